"""select_batch with category balance on an imported-embedding project; the CLI flags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import create_project
from mmcurate.rounds import select_batch

N_COMMON, N_RARE = 100, 10  # the rare category is 10x rarer


def _folder(tmp_path, with_category=True):
    rng = np.random.default_rng(0)
    cats = np.r_[np.repeat(["a", "b", "c"], N_COMMON), np.full(N_RARE, "rare")]
    centres = rng.normal(size=(4, 16))
    img = centres[pd.factorize(cats)[0]] + 0.5 * rng.normal(size=(len(cats), 16))
    txt = img + 0.5 * rng.normal(size=img.shape)
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(len(cats))],
                         "caption": [f"c{i}" for i in range(len(cats))]})
    if with_category:
        meta["category"] = cats
    return write_embedding_folder(tmp_path / "emb", img.astype(np.float32), txt.astype(np.float32), meta)


@pytest.fixture
def proj(tmp_path):
    return create_project(tmp_path / "p", embeddings=_folder(tmp_path))


def _categories(proj, batch):
    return proj.pairs.set_index("pair_id").loc[batch["pair_id"], "category"].value_counts()


@pytest.mark.parametrize(("mode", "expected"), [("uniform", {"a": 5, "b": 5, "c": 5, "rare": 5}),
                                                ("proportional", {"a": 7, "b": 6, "c": 6, "rare": 1})])
def test_select_batch_balances_categories(proj, mode, expected):
    selected = select_batch(proj, budget=20, strategy="margin", balance="categories",
                            balance_mode=mode, explore=0.0)  # shares of the exploit part
    round_id, batch = selected.round, selected.table
    counts = _categories(proj, batch)
    assert len(batch) == 20 and batch["pair_id"].is_unique
    assert counts.to_dict() == expected  # proportional: rare 0.65 -> floor 1, 19 shared 6.33 each
    assert (np.diff(batch.sort_values("position")["score"].to_numpy()) <= 1e-12).all()
    params = proj.ledger.rounds().set_index("round").loc[round_id, "params"]
    assert params["balance"] == "categories" and params["balance_mode"] == mode
    # a second round never re-queues, and still gives the rare category its share
    again = select_batch(proj, budget=20, strategy="margin", balance="categories",
                         diversity="coreset", explore=0.0).table
    assert not set(again["pair_id"]) & set(batch["pair_id"])
    assert _categories(proj, again)["rare"] == 5
    select_batch(proj, budget=4, strategy="margin", balance="none")
    assert "balance" not in proj.ledger.rounds()["params"].iloc[-1]


def test_select_batch_without_category_column_says_how_to_add_it(tmp_path):
    proj = create_project(tmp_path / "p", embeddings=_folder(tmp_path, with_category=False))
    with pytest.raises(ValueError, match="`category` column") as err:
        select_batch(proj, budget=5, strategy="margin", balance="categories")
    assert "caption" in str(err.value) and "init --force" in str(err.value)
    with pytest.raises(ValueError, match="categories"):
        select_batch(proj, budget=5, strategy="margin", balance="category")
    assert proj.ledger.rounds().empty


def test_cli_select_balance(proj, capsys):
    assert main(["select", str(proj.root), "--budget", "8", "--strategy", "margin", "--balance",
                 "categories", "--balance-mode", "proportional"]) == 0
    assert "balance=categories (proportional)" in capsys.readouterr().out
    batch = proj.ledger.batch(1)
    assert _categories(proj, batch)["rare"] >= 1


def test_project_rank_is_rank_project(proj):
    """``proj.rank(strategy=...)`` (the promised notebook API) returns rank_project's Ranking."""
    from mmcurate.results import Ranking
    from mmcurate.rounds import rank_project

    expected = rank_project(proj, ["margin"])
    one = proj.rank(strategy="margin")
    assert isinstance(one, Ranking) and isinstance(one.table, pd.DataFrame)
    pd.testing.assert_frame_equal(one.table, expected.table)
    assert one.provenance["strategies"] == ["margin"] and one.strategies == ("margin",)
    both = proj.rank(strategies=["margin", "clip_score"])
    assert both.provenance["strategies"] == ["margin", "clip_score"]
    assert proj.rank(strategy=["margin", "clip_score"]).table.columns.tolist() == both.table.columns.tolist()
    pd.testing.assert_frame_equal(proj.rank().table, rank_project(proj).table)
    with pytest.raises(ValueError, match="not both"):
        proj.rank(strategy="margin", strategies=["margin"])


def test_select_batch_with_coreset_never_picks_held_out_pairs(proj):
    """Held-out ids (``exclude``) are never picked (that they are no centres: tests/test_select.py)."""
    held_out = proj.pairs["pair_id"].iloc[:50].tolist()
    batch = select_batch(proj, budget=10, strategy="margin", diversity="coreset", exclude=held_out,
                         explore=0.0).table
    assert not set(batch["pair_id"]) & set(held_out)


def test_train_without_decisions_says_so_with_its_own_error(proj):
    """No decisions yet is its own state (NoDecisionsError, a ProjectError), not "not embedded"."""
    from mmcurate.exceptions import NoDecisionsError, NotEmbeddedError, ProjectError
    from mmcurate.rounds import train_project_head

    with pytest.raises(NoDecisionsError, match="no decisions yet") as raised:
        train_project_head(proj)
    assert isinstance(raised.value, ProjectError) and not isinstance(raised.value, NotEmbeddedError)
    assert not proj.heads_dir.exists()  # nothing trained, nothing written
