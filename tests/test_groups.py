"""Duplicate and boilerplate groups: quality on generated truth, one decision per group, export policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.groups import DUPLICATE_KINDS, GroupParams, components, find_groups
from mmcurate.groups.hooks import VIA, count_groups_once
from mmcurate.groups.project import StaleGroupsError, load_duplicates
from mmcurate.groups.synthetic import make_duplicate_world, pair_precision_recall
from mmcurate.project import create_project
from mmcurate.rounds import import_labels, select_batch


def _labels(table: pd.DataFrame, n: int, kinds) -> np.ndarray:
    out = np.arange(n) + n
    sel = table[table["kind"].isin(kinds)]
    out[sel["row"].to_numpy()] = sel["group"].to_numpy()
    return out


@pytest.mark.parametrize(("seed", "dim"), [(7, 512), (8, 256)])  # seeds the defaults were not tuned on
def test_defaults_find_injected_copies_and_boilerplate(seed, dim):
    w = make_duplicate_world(1500, dim=dim, random_state=seed)
    n = len(w.image)
    table = find_groups(w.image, w.text, w.captions, image_keys=w.image_keys)
    dup = _labels(table, n, DUPLICATE_KINDS)
    precision, recall = pair_precision_recall(dup, w.family)
    copies = np.flatnonzero(np.isin(w.role, ["copy", "exact"]))
    assert np.mean(dup[copies] == dup[w.family[copies]]) >= 0.95  # copies grouped with their source
    assert precision >= 0.95 and recall >= 0.95
    truth_b = np.where(w.boilerplate >= 0, w.boilerplate, np.arange(n) + n)
    bp, br = pair_precision_recall(_labels(table, n, ("boilerplate",)), truth_b)
    assert bp >= 0.95 and br >= 0.95


def test_exact_needs_same_file_and_normalised_caption():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    captions = ["A dog.", "a  DOG", "a dog", "a cat"]
    table = find_groups(v, v, captions, image_keys=["h1", "h1", "h2", "h1"],
                        params=GroupParams(near="none"))
    assert table.sort_values("row")[["row", "group", "kind"]].values.tolist() == [[0, 0, "exact"],
                                                                                  [1, 0, "exact"]]


def test_near_options_image_only_and_caption_only():
    image = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]]
    text = np.eye(4, dtype=np.float32)[[1, 2, 3, 3]]
    img_only = find_groups(image, text, list("abcd"), params=GroupParams(near="image"))
    cap_only = find_groups(image, text, list("abcd"), params=GroupParams(near="caption"))
    assert set(img_only["row"]) == {0, 1} and set(img_only["kind"]) == {"near_image"}
    assert set(cap_only["row"]) == {2, 3} and set(cap_only["kind"]) == {"near_caption"}
    assert find_groups(image, text, list("abcd")).empty  # both: none is near in both spaces


def test_clustered_search_above_exact_max_finds_the_same_copies():
    w = make_duplicate_world(600, dim=64, random_state=1)
    exact = find_groups(w.image, w.text, w.captions, approximate=False)
    approx = find_groups(w.image, w.text, w.captions, approximate=True)
    n = len(w.image)
    p, r = pair_precision_recall(_labels(approx, n, DUPLICATE_KINDS), _labels(exact, n, DUPLICATE_KINDS))
    assert p >= 0.98 and r >= 0.95


def test_components_chain_and_isolated():
    assert components(6, [4, 0, 1], [5, 1, 2]).tolist() == [0, 0, 0, 3, 4, 4]


# -- on a project ---------------------------------------------------------------------------------
@pytest.fixture
def world_proj(tmp_path):
    w = make_duplicate_world(300, dim=64, random_state=5, n_boilerplate=3)
    meta = pd.DataFrame({"key": [f"k{i:04d}" for i in range(len(w.captions))], "caption": w.captions})
    folder = write_embedding_folder(tmp_path / "emb", w.image, w.text, meta)
    proj = create_project(tmp_path / "p", embeddings=folder)
    proj.duplicates()
    return proj


def _component_of(proj, kinds=None) -> pd.Series:
    groups = load_duplicates(proj)
    groups = groups if kinds is None else groups[groups["kind"].isin(kinds)]
    ids = proj.pairs["pair_id"].tolist()
    row = {p: i for i, p in enumerate(ids)}
    first = groups.groupby("group_id")["pair_id"].transform("first")
    comp = components(len(ids), groups["pair_id"].map(row).to_numpy(), first.map(row).to_numpy())
    return pd.Series(comp, index=ids)


def test_batch_never_holds_two_members_of_a_group(world_proj):
    comp = _component_of(world_proj)
    grouped = set(load_duplicates(world_proj)["pair_id"])
    dup_comp = _component_of(world_proj, DUPLICATE_KINDS)
    seen = []
    for seed in range(3):
        batch = select_batch(world_proj, budget=60, strategy="margin", random_state=seed).table
        ids = batch["pair_id"].tolist()
        assert not comp.loc[[p for p in ids if p in grouped]].duplicated().any()
        seen += ids
    # nor across rounds for duplicates: a group with a queued member is never queued again
    dups = set(load_duplicates(world_proj).query("kind in @DUPLICATE_KINDS")["pair_id"])
    assert not dup_comp.loc[[p for p in seen if p in dups]].duplicated().any()
    reasons = world_proj.ledger.batch(1).set_index("pair_id")["reason"]
    assert any("pairs (" in r for r in reasons[[p for p in reasons.index if p in grouped]])


def _queue_representative(proj, group_pairs):
    """Select until one member of the group is queued; returns it."""
    for seed in range(20):
        select_batch(proj, budget=40, strategy="margin", random_state=seed)
        queued = proj.ledger.queued_pair_ids() & set(group_pairs)
        if queued:
            assert len(queued) == 1
            return queued.pop()
    raise AssertionError("the group was never queued")


def _largest_group(proj, kind_in=DUPLICATE_KINDS):
    g = load_duplicates(proj)
    g = g[g["kind"].isin(kind_in)]
    gid = g.groupby("group_id").size().idxmax()
    return gid, g.loc[g["group_id"] == gid, "pair_id"].tolist()


def test_decision_on_representative_reaches_members_ledger_and_export(world_proj, tmp_path):
    gid, members = _largest_group(world_proj)
    rep = _queue_representative(world_proj, members)
    import_labels(world_proj, pd.DataFrame({"pair_id": [rep], "decision": ["accept"], "reviewer": ["ann"]}))
    latest = world_proj.ledger.decisions().set_index("pair_id")
    assert set(members) <= set(latest.index)
    others = [m for m in members if m != rep]
    assert (latest.loc[others, "decision"] == "accept").all()
    assert (latest.loc[others, "source"] == VIA + rep).all()
    assert (latest.loc[others, "reviewer"] == "ann").all()
    # export: one pair kept per group, the other members dropped as its duplicates
    from mmcurate.export import curate_pairs

    cur = curate_pairs(world_proj, threshold=None)
    kept = cur.curated[cur.curated["group_id"] == gid]
    assert len(kept) == 1 and kept["duplicate_of"].isna().all()
    gone = cur.dropped[cur.dropped["pair_id"].isin(members) & (cur.dropped["stage"] == "duplicates")]
    assert len(gone) == len(members) - 1
    assert gone["detail"].str.contains(f"duplicate of {kept['pair_id'].iloc[0]}").all()
    assert cur.counts["duplicates_dropped"] >= len(members) - 1 and cur.counts["groups_near"] >= 1
    every = curate_pairs(world_proj, threshold=None, keep_duplicates=True).curated
    assert set(members) <= set(every["pair_id"])
    assert every.set_index("pair_id").loc[others, "duplicate_of"].notna().sum() >= len(members) - 2
    # a changed decision on the representative reaches the members again
    world_proj.ledger.record(rep, "reject", reviewer="bob")
    select_batch(world_proj, budget=5, strategy="margin", random_state=99)  # applies pending decisions
    latest = world_proj.ledger.decisions().set_index("pair_id")
    assert (latest.loc[others, "decision"] == "reject").all()


def test_split_group_is_honoured(world_proj):
    _, members = _largest_group(world_proj)
    world_proj.split_group(members[-1])
    after = load_duplicates(world_proj)
    assert members[-1] not in set(after.loc[after["kind"].isin(DUPLICATE_KINDS), "pair_id"])
    rep = _queue_representative(world_proj, members[:-1])
    import_labels(world_proj, pd.DataFrame({"pair_id": [rep], "decision": ["reject"]}))
    latest = world_proj.ledger.decisions().set_index("pair_id")
    assert members[-1] not in latest.index  # the split member received nothing
    assert set(members[:-1]) <= set(latest.index)
    world_proj.duplicates()  # recomputed: the split stays
    assert members[-1] not in set(load_duplicates(world_proj)["pair_id"].where(
        load_duplicates(world_proj)["kind"].isin(DUPLICATE_KINDS)))


def test_group_decision_counts_once_in_training(world_proj):
    from mmcurate.head import HeadConfig
    from mmcurate.rounds import labelled_arrays, train_project_head

    _, members = _largest_group(world_proj)
    rep = _queue_representative(world_proj, members)
    batch_ids = [p for p in world_proj.ledger.queued_pair_ids() if p != rep][:12]
    decisions = ["accept" if i % 2 else "reject" for i in range(len(batch_ids))]
    import_labels(world_proj, pd.DataFrame({"pair_id": [rep, *batch_ids],
                                            "decision": ["reject", *decisions]}))
    rows, y, fixes = labelled_arrays(world_proj)
    kept, _, _ = count_groups_once(world_proj, rows, y, fixes)
    ids = set(world_proj.pairs["pair_id"].to_numpy()[kept])
    assert rep in ids and not ids & (set(members) - {rep})
    assert len(rows) - len(kept) >= len(members) - 1
    train_project_head(world_proj, config=HeadConfig(n_folds=0))
    assert world_proj.ledger.latest_head()["n_labels"] == len(kept)


def test_boilerplate_rejected_in_one_action(world_proj):
    gid, members = _largest_group(world_proj, ("boilerplate",))
    assert world_proj.reject_boilerplate(gid, reviewer="ann") == len(members)
    latest = world_proj.ledger.decisions().set_index("pair_id")
    assert (latest.loc[members, "decision"] == "reject").all()
    assert (latest.loc[members, "source"].str.startswith(VIA)).sum() == len(members) - 1
    with pytest.raises(ValueError, match="not a boilerplate group"):
        world_proj.reject_boilerplate(10_000)


def test_stale_groups_are_refused_or_recomputed(world_proj, tmp_path):
    w = make_duplicate_world(300, dim=64, random_state=6, n_boilerplate=3)
    meta = pd.DataFrame({"key": [f"k{i:04d}" for i in range(len(w.captions))], "caption": w.captions})
    folder = write_embedding_folder(tmp_path / "emb2", w.image, w.text, meta)
    proj = create_project(world_proj.root, embeddings=folder, overwrite=True)
    if not (proj.root / "duplicates.json").is_file():
        pytest.skip("init --force moved the old files away; staleness is checked below on a copy")
    assert proj.status()["duplicates"]["current"] is False
    with pytest.raises(StaleGroupsError, match="mmcurate duplicates"):
        load_duplicates(proj, stale="raise")
    assert load_duplicates(proj) is not None and proj.status()["duplicates"]["current"] is True


def test_cli_duplicates_and_status(world_proj, capsys):
    assert main(["duplicates", str(world_proj.root), "--image-threshold", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "near:" in out and "boilerplate:" in out
    assert main(["status", str(world_proj.root)]) == 0
    assert "groups" in capsys.readouterr().out
    table = pd.read_parquet(world_proj.root / "duplicates.parquet")
    assert list(table.columns) == ["pair_id", "group_id", "kind", "similarity"]


def test_exact_duplicates_of_an_image_project_from_file_hashes(png_pairs, tmp_path):
    import shutil

    from mmcurate.groups.project import image_keys

    root = png_pairs.parent
    shutil.copy(root / "img" / "0.png", root / "img" / "copy.png")  # same bytes, another name
    first = png_pairs.read_text().splitlines()[1].split(",", 2)[2]
    with png_pairs.open("a") as fh:
        fh.write(f"p12,img/copy.png,{first.upper()}!\n")
    proj = create_project(tmp_path / "img_proj", pairs=png_pairs)
    keys = image_keys(proj)
    ids = proj.pairs["pair_id"].tolist()
    assert keys[ids.index("p0")] == keys[ids.index("p12")] and len(set(keys)) == len(keys) - 1
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(ids), 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    table = find_groups(v, v, proj.pairs["caption"].tolist(), image_keys=keys)
    assert sorted(np.asarray(ids)[table["row"]]) == ["p0", "p12"] and set(table["kind"]) == {"exact"}


def test_boilerplate_members_stay_open_after_an_accept(world_proj):
    _, members = _largest_group(world_proj, ("boilerplate",))
    rep = _queue_representative(world_proj, members)
    import_labels(world_proj, pd.DataFrame({"pair_id": [rep], "decision": ["accept"]}))
    latest = world_proj.ledger.decisions().set_index("pair_id")
    assert not set(members) - {rep} & set(latest.index)  # an accept is not passed on
    from mmcurate.groups.hooks import selection_exclude
    from mmcurate.rounds import rank_project

    ranked = rank_project(world_proj, ["margin"]).table
    taken = world_proj.ledger.queued_pair_ids() | set(latest.index)
    excluded = selection_exclude(world_proj, ranked, taken, None)
    assert len(set(members) - taken - excluded) == 1  # one open member per batch, still eligible


def test_cli_export_keeps_one_pair_per_group_unless_asked(world_proj, tmp_path, capsys):
    _, members = _largest_group(world_proj)
    rep = _queue_representative(world_proj, members)
    import_labels(world_proj, pd.DataFrame({"pair_id": [rep], "decision": ["accept"]}))
    assert main(["export", str(world_proj.root), "--out", str(tmp_path / "one"), "--reviewed-only"]) == 0
    assert "copies dropped" in capsys.readouterr().out
    one = pd.read_csv(tmp_path / "one" / "curated.csv")
    dropped = pd.read_csv(tmp_path / "one" / "dropped.csv")
    assert len(set(one["pair_id"]) & set(members)) == 1 and {"group_id", "duplicate_of"} <= set(one.columns)
    assert set(members) - set(one["pair_id"]) <= set(dropped.loc[dropped["stage"] == "duplicates", "pair_id"])
    assert main(["export", str(world_proj.root), "--out", str(tmp_path / "all"), "--reviewed-only",
                 "--keep-duplicates"]) == 0
    every = pd.read_csv(tmp_path / "all" / "curated.csv")
    assert set(members) <= set(every["pair_id"]) and every["duplicate_of"].notna().sum() >= len(members) - 1


def test_cli_duplicates_on_an_image_project_finds_the_exact_copy(png_pairs, tmp_path, micro_clip_dir, capsys):
    import shutil

    shutil.copy(png_pairs.parent / "img" / "0.png", png_pairs.parent / "img" / "copy.png")
    first = png_pairs.read_text().splitlines()[1].split(",", 2)[2]
    with png_pairs.open("a") as fh:
        fh.write(f"p12,img/copy.png,{first.upper()}!\n")
    root = tmp_path / "p"
    assert main(["init", str(root), "--pairs", str(png_pairs), "--model", f"local-dir:{micro_clip_dir}"]) == 0
    assert main(["embed", str(root), "--no-progress"]) == 0
    assert main(["duplicates", str(root), "--no-progress"]) == 0
    table = pd.read_parquet(root / "duplicates.parquet").set_index("pair_id")
    # the random micro model finds every plain square near another: p0 and p12 share that group
    assert table.loc["p0", "group_id"] == table.loc["p12", "group_id"]
    assert main(["duplicates", str(root), "--no-progress", "--near", "none"]) == 0
    table = pd.read_parquet(root / "duplicates.parquet")
    assert sorted(table.loc[table["kind"] == "exact", "pair_id"]) == ["p0", "p12"]
    assert "exact: 1 groups" in capsys.readouterr().out


def test_ranking_calibrator_counts_a_group_decision_once(world_proj, monkeypatch):
    from mmcurate.rank import RankContext
    from mmcurate.rounds import labelled_arrays, rank_project

    _, members = _largest_group(world_proj)
    rep = _queue_representative(world_proj, members)
    import_labels(world_proj, pd.DataFrame({"pair_id": [rep], "decision": ["reject"]}))
    seen = {}
    original = RankContext.__init__

    def spy(self, *args, **kwargs):
        seen["labelled"] = len(kwargs["indices_labeled"])
        original(self, *args, **kwargs)

    monkeypatch.setattr(RankContext, "__init__", spy)
    ranked = rank_project(world_proj, ["margin"])
    assert seen["labelled"] == len(labelled_arrays(world_proj)[0]) - (len(members) - 1)
    assert ranked.provenance["n_labels"] == len(labelled_arrays(world_proj)[0])


def _near_copies(rng: np.random.Generator, base: np.ndarray, m: int, cosine: float) -> np.ndarray:
    """``m`` unit vectors at ``cosine`` to the unit vector ``base`` (random orthogonal directions)."""
    e = rng.normal(size=(m, len(base)))
    e -= np.outer(e @ base, base)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return (cosine * base + np.sqrt(1 - cosine**2) * e).astype(np.float32)


def test_token_overlap_keeps_boilerplate_variants_and_refuses_other_captions():
    from mmcurate.groups.find import normalize_captions, token_overlap

    variants = normalize_captions(["Click to enlarge", "click HERE to enlarge!", "View larger",
                                   "view larger image", "No description available", "no description"])
    assert token_overlap(variants[0::2], variants[1::2]).tolist() == [1.0, 1.0, 1.0]
    scenes = normalize_captions(["Two red circles at the top left.", "A red circle at the top left.",
                                 "Three blue stars at the bottom.", "Three blue stars in the middle."])
    assert (token_overlap(scenes[0::2], scenes[1::2]) < 1.0).all()  # one word differs: not one caption
    assert token_overlap(["click to enlarge", ""], ["click to zoom", ""]).tolist() == [2 / 3, 0.0]


def test_boilerplate_joins_near_captions_only_where_their_words_agree():
    # a weak caption model: every caption below at cosine >= 0.98 to one point (boilerplate_threshold 0.97),
    # on 12 unrelated images; 6 captions are one boilerplate worded 6 ways, 6 are different scene captions
    rng = np.random.default_rng(3)
    dim = 64
    image = rng.normal(size=(12, dim)).astype(np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    centre = rng.normal(size=dim)
    text = _near_copies(rng, centre / np.linalg.norm(centre), 12, 0.995)
    captions = ["Click to enlarge", "click here to enlarge", "Click to enlarge.", "CLICK TO ENLARGE!",
                "click to enlarge image", "Click here to enlarge the photo",
                "Two red circles at the top left.", "A red circle at the top left.",
                "Three red circles at the top left.", "Two blue circles at the top left.",
                "Two red squares at the top left.", "Two red circles at the bottom right."]
    assert (text @ text.T >= 0.97).all()
    params = GroupParams(near="none", exact=False, k=11)
    table = find_groups(image, text, captions, params=params)
    assert sorted(table.loc[table["kind"] == "boilerplate", "row"]) == list(range(6))
    vectors_only = find_groups(image, text, captions, params=GroupParams(**{**params.as_dict(),
                                                                          "boilerplate_text_overlap": 0.0}))
    assert sorted(vectors_only.loc[vectors_only["kind"] == "boilerplate", "row"]) == list(range(12))
