"""Pixel verification of near duplicates: signatures of real PIL images, edges confirmed or refused,
an image project whose vectors cannot tell its scenes apart."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.exceptions import ProjectError
from mmcurate.groups import GroupParams, find_groups
from mmcurate.groups.find import confirm_edges, pixel_distance
from mmcurate.groups.pixels import image_signature, read_signatures
from mmcurate.groups.project import load_duplicates
from mmcurate.project import create_project, open_project
from mmcurate.synth import COLORS, POSITIONS, Scene, render_scene

THRESHOLD = GroupParams().pixel_threshold


def _copy(image: Image.Image, crop: int, quality: int, scale: float = 1.0) -> Image.Image:
    """``image`` cropped by ``crop`` px on every side, resized (back to its size times ``scale``)
    and re-encoded as JPEG, decoded again."""
    w, h = image.size
    out = image.crop((crop, crop, w - crop, h - crop)).resize((round(w * scale), round(h * scale)))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _scenes(n: int, seed: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [Scene(shape=str(rng.choice(["circle", "square", "star", "cross"])),
                  color=str(rng.choice(list(COLORS))), count=int(rng.integers(1, 4)),
                  position=str(rng.choice(POSITIONS)), size="large", seed=int(rng.integers(2**31)))
            for _ in range(n)]


def _distance(a: Image.Image, b: Image.Image) -> float:
    return float(pixel_distance(image_signature(a)[None], image_signature(b)[None])[0])


def test_signature_confirms_reencoded_cropped_copies_and_refuses_other_colour_or_place():
    rng = np.random.default_rng(0)
    colours = list(COLORS)
    for scene in _scenes(12, seed=1):
        image = render_scene(scene, size=96)
        for crop in (0, 3):  # the worst JPEG quality, with and without a crop; and a resize
            assert _distance(image, _copy(image, crop, quality=60)) <= THRESHOLD
        assert _distance(_copy(image, 2, quality=75, scale=0.6), image) <= THRESHOLD
        other = colours[(colours.index(scene.color) + 1 + int(rng.integers(len(colours) - 1))) % len(colours)]
        recoloured = render_scene(replace(scene, color=other), size=96)  # same background, same place
        moved = render_scene(replace(scene, position=POSITIONS[(POSITIONS.index(scene.position) + 2) % 5]),
                             size=96)
        lookalike = render_scene(replace(scene, seed=scene.seed + 1), size=96)  # same attributes
        for different in (recoloured, moved, lookalike):
            assert _distance(image, different) > THRESHOLD
            assert _distance(image, _copy(different, 1, quality=90)) > THRESHOLD


def test_confirm_edges_leaves_rows_without_a_signature_unconfirmed():
    same = image_signature(Image.new("RGB", (30, 20), (200, 40, 40)))
    sig = np.stack([same, same])
    ok = confirm_edges([0, 0, 1], [1, 2, 2], sig, [0, 1, -1], threshold=THRESHOLD)
    assert ok.tolist() == [True, False, False]


def test_unreadable_images_are_not_read_never_raise(tmp_path):
    render_scene(_scenes(1, 0)[0], size=48).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "good.png").read_bytes()[:60])
    sig, ok = read_signatures(["good.png", "bad.png", "missing.png", "cut.jpg", "../outside.png"],
                              image_root=tmp_path)
    assert ok.tolist() == [True, False, False, False, False] and sig.shape[0] == 5


def _scene_project(tmp_path, micro_clip_dir):
    """12 distinct scenes, each with a re-encoded cropped copy, plus a look-alike (same attributes,
    its own image) of each of the first 6 and a recoloured twin of the next 3: 39 pairs."""
    folder = tmp_path / "data"
    (folder / "img").mkdir(parents=True)
    rows, family = [], []
    scenes = _scenes(12, seed=4)
    colours = list(COLORS)
    for i, scene in enumerate(scenes):
        image = render_scene(scene, size=96)
        image.save(folder / "img" / f"s{i}.png")
        rows.append((f"s{i}", f"img/s{i}.png", f"a {scene.color} {scene.shape} on the {scene.position}"))
        family.append(i)
    for i, scene in enumerate(scenes):
        _copy(render_scene(scene, size=96), i % 4, quality=60 + 3 * i).save(folder / "img" / f"c{i}.jpg")
        rows.append((f"c{i}", f"img/c{i}.jpg", rows[i][2] + "."))
        family.append(i)
    for i, scene in enumerate(scenes[:9]):
        other = replace(scene, seed=scene.seed + 7) if i < 6 else replace(
            scene, color=colours[(colours.index(scene.color) + 3) % len(colours)])
        render_scene(other, size=96).save(folder / "img" / f"l{i}.png")
        rows.append((f"l{i}", f"img/l{i}.png", rows[i][2]))
        family.append(100 + i)
    pd.DataFrame(rows, columns=["id", "image", "caption"]).to_csv(folder / "pairs.csv", index=False)
    root = tmp_path / "proj"
    assert main(["init", str(root), "--pairs", str(folder / "pairs.csv"), "--image-root", str(folder),
                 "--model", f"local-dir:{micro_clip_dir}"]) == 0
    assert main(["embed", str(root), "--no-progress"]) == 0
    return root, dict(zip([r[0] for r in rows], family))


def _families(table: pd.DataFrame) -> list[set[str]]:
    return sorted((set(g) for _, g in table.groupby("group_id")["pair_id"]), key=min)


def test_image_project_groups_the_copies_not_the_lookalikes(tmp_path, micro_clip_dir):
    # every pair a candidate (any cosine, all neighbours): vectors that cannot tell scenes apart at all
    root, family = _scene_project(tmp_path, micro_clip_dir)
    blind = ["--image-threshold", "-1", "--caption-threshold", "-1", "--k", "50", "--no-progress",
             "--no-exact"]
    assert main(["duplicates", str(root), *blind]) == 0  # --verify auto: pixels (image files)
    table = pd.read_parquet(root / "duplicates.parquet")
    dup = table[table["kind"] == "near"]
    # each copy with its source, nothing else
    assert _families(dup) == sorted(({f"s{i}", f"c{i}"} for i in range(12)), key=min)
    assert not {f"l{i}" for i in range(9)} & set(dup["pair_id"])
    meta = json.loads((root / "duplicates.json").read_text())
    assert meta["params"]["verify"] == "auto" and meta["params"]["pixel_threshold"] == THRESHOLD
    assert meta["params"]["candidate_threshold"] == GroupParams().candidate_threshold
    assert meta["params"]["boilerplate_text_overlap"] == GroupParams().boilerplate_text_overlap

    assert main(["duplicates", str(root), *blind, "--verify", "none"]) == 0  # the old behaviour
    table = pd.read_parquet(root / "duplicates.parquet")
    assert len(table.loc[table["kind"] == "near", "group_id"].unique()) == 1 and len(table) >= len(family)

    # the recorded verify and threshold are what a recompute of stale groups uses
    assert main(["duplicates", str(root), *blind, "--verify", "pixels", "--pixel-threshold", "0"]) == 0
    meta = json.loads((root / "duplicates.json").read_text())
    assert meta["params"]["verify"] == "pixels" and meta["params"]["pixel_threshold"] == 0.0
    meta["fingerprint"] = "vectors changed"
    (root / "duplicates.json").write_text(json.dumps(meta))
    again = load_duplicates(open_project(root))
    assert again is not None and again.empty  # threshold 0: no copy's thumbnails are identical


def test_unreadable_image_in_a_candidate_pair_is_left_out(tmp_path, micro_clip_dir):
    root, _ = _scene_project(tmp_path, micro_clip_dir)
    (tmp_path / "data" / "img" / "c0.jpg").write_bytes(b"broken")  # after embedding
    proj = open_project(root)
    groups = proj.duplicates(image_threshold=-1.0, caption_threshold=-1.0, k=50, exact=False)
    assert "c0" not in set(groups["pair_id"]) and {"s1", "c1"} <= set(groups["pair_id"])


def test_imported_embeddings_keep_vectors_only(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(6, 8)).astype(np.float32)
    v[1] = v[0]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    folder = write_embedding_folder(tmp_path / "emb", v, v, pd.DataFrame(
        {"key": [f"k{i}" for i in range(6)], "caption": [f"c{i}" for i in range(6)]}))
    proj = create_project(tmp_path / "p", embeddings=folder)
    groups = proj.duplicates()  # auto: no image files, vectors only
    assert len(groups) == 2 and groups["pair_id"].nunique() == 2
    with pytest.raises(ProjectError, match="verify='pixels'"):
        proj.duplicates(verify="pixels")
    with pytest.raises(ValueError, match="pixel_signatures"):
        find_groups(v, v, [f"c{i}" for i in range(6)], params=GroupParams(verify="pixels"))
    with pytest.raises(ValueError, match="verify must be one of"):
        GroupParams(verify="pixel")


def test_candidate_threshold_applies_only_when_the_pixels_confirm():
    # a weak model: each copy's image vector at cosine 0.85 to its source's (below image_threshold 0.92,
    # above candidate_threshold 0.80), its caption vector at 0.85 too (the same text, re-punctuated, as
    # a weak model may embed it); the look-alikes' vectors likewise, with their own captions
    d = GroupParams()
    assert d.candidate_threshold < 0.85 < d.image_threshold and 0.85 < d.caption_threshold
    rng = np.random.default_rng(0)
    scenes = _scenes(6, seed=9)
    images = [render_scene(s, size=96) for s in scenes]
    images += [_copy(im, 2, quality=70) for im in images[:3]]  # rows 6-8: copies of 0-2
    images += [render_scene(replace(s, seed=s.seed + 1), size=96) for s in scenes[3:]]  # 9-11: look-alikes
    sig = np.stack([image_signature(im) for im in images])
    dim = 64
    base = rng.normal(size=(6, dim))
    base /= np.linalg.norm(base, axis=1, keepdims=True)

    def near(rows: np.ndarray) -> np.ndarray:
        e = rng.normal(size=(len(rows), dim))
        e -= (e * base[rows]).sum(1, keepdims=True) * base[rows]
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        return 0.85 * base[rows] + np.sqrt(1 - 0.85**2) * e

    src = np.r_[0:3, 3:6]
    image_v = np.vstack([base, near(src)]).astype(np.float32)
    text_v = np.vstack([base, near(src)]).astype(np.float32)
    captions = [f"pair {i}" for i in range(6)] + [f"Pair {i}!" for i in range(3)]  # copies: the same text
    captions += [f"pair {i}" for i in range(9, 12)]

    def signatures(rows):
        return sig[rows], np.ones(len(rows), bool)

    def near_rows(params: GroupParams, reader=signatures) -> list[set[int]]:
        t = find_groups(image_v, text_v, captions, params=params, pixel_signatures=reader)
        return sorted((set(g) for _, g in t.groupby("group")["row"]), key=min)

    assert near_rows(d) == [{0, 6}, {1, 7}, {2, 8}]  # copies proposed at 0.85 and confirmed; look-alikes not
    assert near_rows(replace(d, verify="none")) == []  # vectors only: image_threshold 0.92 applies
    assert near_rows(d, reader=None) == []  # no images (imported embeddings): likewise
    assert near_rows(replace(d, candidate_threshold=0.9)) == []  # the lower of the two proposes
    assert near_rows(replace(d, near="caption")) == []  # never pixel-checked: caption_threshold applies
    # captions are never lowered to the candidate threshold: one image with another caption at cosine
    # 0.85 is two captions of one picture, not a copy (five captions per image must not become one)
    other = [*captions[:6], "a different caption", "another one", "a third", *captions[9:]]
    t = find_groups(image_v, text_v, other, params=d, pixel_signatures=signatures)
    assert t.empty
