"""Users' own strategies, selectors and input formats (issue 26, item 7).

``tests/plugins/mmcurate_test_plugin.py`` is a plugin as a user writes one, outside the package:
importing it registers a strategy, a selector and a format. Here it runs through the library
(``rank_project``, ``proj.rank``, ``select_batch``, ``load_pairs``) and the CLI (``--plugin FILE``
and ``MMCURATE_PLUGINS``: ``rank``, ``select``, ``strategies``, ``init``). Every test leaves the
registries as it found them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.data import FORMATS, load_pairs, register_format, unregister_format
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import open_project
from mmcurate.rank import STRATEGIES, register_strategy, unregister_strategy
from mmcurate.rounds import rank_project, select_batch
from mmcurate.select import SELECTORS, get_selector, register_selector, unregister_selector
from mmcurate.synth import domain_shift_embeddings

PLUGINS = Path(__file__).parent / "plugins"
PLUGIN_FILE = PLUGINS / "mmcurate_test_plugin.py"
N = 60


@pytest.fixture(autouse=True)
def clean_registries():
    """Whatever a test registers (the plugin's names, or its own) is taken out again."""
    before = (STRATEGIES.names(), SELECTORS.names(), FORMATS.names())
    yield
    for registry, names in zip((STRATEGIES, SELECTORS, FORMATS), before):
        for name in set(registry.names()) - set(names):
            registry.unregister(name)
    for module in [m for m in sys.modules if "mmcurate_test_plugin" in m]:
        del sys.modules[module]


@pytest.fixture
def plugin(monkeypatch):
    """The plugin imported by name, as a library user would."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    return importlib.import_module("mmcurate_test_plugin")


@pytest.fixture
def project(tmp_path, capsys):
    image, text, _, _ = domain_shift_embeddings(N, 16, rate=0.2, random_state=0)
    meta = pd.DataFrame({"key": [f"k{i:03d}" for i in range(N)], "caption": [f"c{i}" for i in range(N)]})
    folder = write_embedding_folder(tmp_path / "emb", image, text, meta)
    assert main(["init", str(tmp_path / "p"), "--embeddings", str(folder)]) == 0
    capsys.readouterr()
    return tmp_path / "p"


def _cosine(proj) -> pd.Series:
    ranked = rank_project(proj, ["clip_score"], pool_state=False, save_state=False).table
    return pd.Series(1.0 - ranked["score"].to_numpy(), index=ranked["pair_id"])


# -- the library ------------------------------------------------------------------------------------
def test_a_plugin_strategy_ranks_and_selects_in_the_library(plugin, project):
    proj = open_project(project)
    ranking = rank_project(proj, ["low-cosine"], options={"low_cosine": {"power": 2.0}})
    ranked = ranking.table
    expected = (1.0 - _cosine(proj)) ** 2
    np.testing.assert_allclose(ranked.set_index("pair_id")["score"], expected[ranked["pair_id"]])
    assert ranking.provenance["strategies"] == ["low-cosine"]  # as given, like built-ins
    via_project = proj.rank("low_cosine").table
    np.testing.assert_allclose(via_project["score"], ((1.0 - _cosine(proj)) ** 1)[via_project["pair_id"]])

    selected = select_batch(proj, budget=8, strategy="low_cosine", explore=0.0)
    round_id, batch = selected.round, selected.table
    top = (1.0 - _cosine(proj)).sort_values(ascending=False, kind="stable").index[:8]
    assert round_id == 1 and set(batch["pair_id"]) == set(top)


def test_a_plugin_selector_picks_the_batch(plugin, project):
    proj = open_project(project)
    selected = select_batch(proj, budget=6, strategy="clip_score", diversity="lowest_rows", explore=0.0)
    round_id, batch = selected.round, selected.table
    assert set(batch["pair_id"]) == set(proj.pairs["pair_id"].iloc[:6])
    assert round_id == 1
    second = select_batch(proj, budget=6, strategy="clip_score", diversity="lowest_rows", explore=0.0).table
    # queued pairs are the selector's indices_labeled: never picked again
    assert set(second["pair_id"]) == set(proj.pairs["pair_id"].iloc[6:12])


def test_a_plugin_format_is_read_by_load_pairs(plugin, png_pairs, tmp_path):
    table = pd.read_csv(png_pairs)
    lines = tmp_path / "pairs.lines"
    lines.write_text("\n".join(f"{r.image}|{r.caption}" for r in table.itertuples())
                     + "\nno caption here\n../outside.png|escapes the root\n")
    result = load_pairs(lines, image_root=tmp_path)  # by suffix
    assert result.pairs["image"].tolist() == table["image"].tolist()
    assert sorted(result.rejects["reason"]) == ["malformed_row", "outside_root"]
    assert len(load_pairs(lines, image_root=tmp_path, fmt="lines").pairs) == len(table)


# -- registration: the contract is checked ----------------------------------------------------------
def _score(view, power=1.0):
    """A docstring gives the description."""
    return view.proba


def test_register_strategy_checks_the_entry():
    entry = register_strategy("Mine", _score, needs=("proba",))
    assert entry.name == "mine" and entry.description == "A docstring gives the description."
    assert STRATEGIES.get("MINE") is entry and entry.options == {"power": 1.0}
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        register_strategy("mine", _score, needs=("proba",))
    assert register_strategy("mine", _score, needs=("cosine",), replace=True).needs == ("cosine",)
    for name in ("margin", "qbc"):  # a built-in name, an alias
        with pytest.raises(ValueError, match=r"already registered|is an alias"):
            register_strategy(name, _score)
    bad = [({"name": "two words"}, "letters, digits and underscores"),
           ({"score": 3}, "must be a function"),
           ({"score": lambda: 1}, "first, positional parameter"),
           ({"score": lambda view, power: 1}, "power has none"),
           ({"needs": ("probability",)}, "unknown arrays"),
           ({"needs": "proba"}, "not a string"),
           ({"objective": "win"}, "objective must be one of"),
           ({"score": lambda view: view.proba}, "description= .* or a docstring"),
           ({"needs_by": {"on": {"x": ("proba",)}}}, "or options")]
    for change, match in bad:
        kwargs = {"name": "other", "score": _score, **change}
        with pytest.raises(ValueError, match=match):
            register_strategy(kwargs.pop("name"), kwargs.pop("score"), **kwargs)
    assert "other" not in STRATEGIES
    assert unregister_strategy("mine") is not None and "mine" not in STRATEGIES
    with pytest.raises(ValueError, match="no strategy 'mine' is registered"):
        unregister_strategy("mine")


def test_a_strategy_reading_what_it_did_not_declare_fails_when_ranked(project):
    register_strategy("sneaky", lambda view: 1.0 - view.cosine, needs=("proba",), description="reads cosine")
    with pytest.raises(AttributeError, match="reads 'cosine', which it does not declare"):
        rank_project(open_project(project), ["sneaky"])


def test_register_selector_checks_the_entry_and_every_result():
    def bad_pick(scores, *, n, embeddings=None, indices_labeled=None, exclude=None, random_state=None):
        """Returns a labelled row."""
        return np.arange(n)

    register_selector("bad_pick", bad_pick)
    with pytest.raises(ValueError, match=r"selector 'bad_pick' returned .* labelled or excluded"):
        get_selector("bad-pick")(np.ones(5), n=2, indices_labeled=[0])
    assert get_selector("bad_pick")(np.ones(5), n=2).tolist() == [0, 1]
    with pytest.raises(ValueError, match="already registered"):
        register_selector("bad_pick", bad_pick)
    with pytest.raises(ValueError, match="is an alias"):
        register_selector("none", bad_pick)
    with pytest.raises(ValueError, match="lacks indices_labeled, exclude"):
        register_selector("short", lambda scores, *, n, embeddings=None, random_state=None: [0])
    unregister_selector("bad_pick")
    assert "bad_pick" not in SELECTORS


def test_register_format_checks_the_entry(tmp_path):
    with pytest.raises(ValueError, match="lacks image_root, columns"):
        register_format("xml", lambda source: None, description="x")
    with pytest.raises(ValueError, match="suffixes must be"):
        register_format("xml", lambda source, *, image_root, columns: None, suffixes="xml", description="x")
    with pytest.raises(ValueError, match="already registered"):
        register_format("csv", lambda source, *, image_root, columns: None, description="x")
    register_format("nothing", lambda source, *, image_root, columns: pd.DataFrame({"image": ["a.png"]}),
                    description="forgets columns")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(Exception, match=r"without column\(s\) \['_row', 'id', 'caption'\]"):
        load_pairs(tmp_path / "x.txt", fmt="nothing")
    unregister_format("nothing")


# -- the command line -------------------------------------------------------------------------------
def test_cli_rank_and_select_with_a_plugin_file(project, tmp_path, capsys):
    out = tmp_path / "ranked.csv"
    argv = ["--plugin", str(PLUGIN_FILE), "rank", str(project), "--strategy", "low_cosine", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "ranked 60 pairs by low_cosine" in capsys.readouterr().out
    scores = pd.read_csv(out).set_index("pair_id")["score"]
    cosine = _cosine(open_project(project))
    np.testing.assert_allclose(scores, (1.0 - cosine)[scores.index])

    assert main(["--plugin", str(PLUGIN_FILE), "select", str(project), "--budget", "5", "--strategy",
                 "low-cosine", "--diversity", "lowest_rows", "--explore", "0"]) == 0, capsys.readouterr().err
    assert "round 1: 5 pairs queued" in capsys.readouterr().out
    proj = open_project(project)
    assert set(proj.ledger.batch(1)["pair_id"]) == set(proj.pairs["pair_id"].iloc[:5])

    assert main(["--plugin", str(PLUGIN_FILE), "strategies"]) == 0
    listed = capsys.readouterr().out
    assert "low_cosine" in listed and "lowest_rows" in listed


def test_cli_loads_plugins_named_in_the_environment(project, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("MMCURATE_PLUGINS", "mmcurate_test_plugin")
    assert main(["select", str(project), "--budget", "4", "--strategy", "low_cosine", "--explore", "0"]) == 0
    top = (1.0 - _cosine(open_project(project))).sort_values(ascending=False, kind="stable").index[:4]
    assert set(open_project(project).ledger.batch(1)["pair_id"]) == set(top)


def test_cli_without_the_plugin_does_not_know_its_names(project, one_line_error):
    assert main(["rank", str(project), "--strategy", "low_cosine"]) == 2
    assert "unknown strategy 'low_cosine'" in one_line_error()


def test_cli_init_reads_a_plugin_format(png_pairs, tmp_path, capsys):
    table = pd.read_csv(png_pairs)
    lines = tmp_path / "pairs.lines"
    lines.write_text("\n".join(f"{r.image}|{r.caption}" for r in table.itertuples()) + "\nbroken\n")
    for extra in ([], ["--format", "lines"]):
        argv = ["--plugin", str(PLUGIN_FILE), "init", str(tmp_path / "p"), "--pairs", str(lines),
                "--no-check-images", "--force", *extra]
        assert main(argv) == 0, capsys.readouterr().err
        assert f"{len(table)} pairs, 1 rejected" in capsys.readouterr().out
        assert open_project(tmp_path / "p").pairs["caption"].tolist() == table["caption"].tolist()


def test_cli_a_plugin_that_cannot_load_is_one_line(one_line_error):
    assert main(["--plugin", "no_such_mmcurate_plugin", "strategies"]) == 2
    assert "cannot load plugin 'no_such_mmcurate_plugin'" in one_line_error()
