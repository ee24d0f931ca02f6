"""The one registry type, what each strategy declares it reads, and engines that refuse what they
cannot serve (before any work, and as a clean CLI error)."""

from __future__ import annotations

from collections import namedtuple
from itertools import product

import numpy as np
import pandas as pd
import pytest

from mmcurate._registry import Registry
from mmcurate.exceptions import MmcurateError, UnsupportedStrategyError
from mmcurate.rank import (
    FROM_FEATURES,
    STRATEGIES,
    ContextView,
    Engine,
    RankContext,
    Strategy,
    compute_from_context,
)
from mmcurate.select import SELECTORS, get_selector, select_topk
from mmcurate.synth import domain_shift_embeddings

N = 300
PARAMS = {"k": 10, "random_state": 0}


def _variants(strategy: Strategy) -> list[dict]:
    """Every combination of the option values a strategy's needs depend on (default options too)."""
    keys = list(strategy.needs_by)
    return [dict(zip(keys, values)) for values in product(*(strategy.needs_by[k] for k in keys))]


CASES = [(s.name, opts) for s in STRATEGIES for opts in _variants(s)]


@pytest.fixture(scope="module")
def data():
    img, txt, noisy, _ = domain_shift_embeddings(N, 16, random_state=3)
    labelled = np.arange(0, N, 6)
    return img, txt, labelled, (~noisy[labelled]).astype(int)


@pytest.fixture(scope="module")
def full(data):
    """A local context over the vectors, with every array computed."""
    img, txt, labelled, y = data
    ctx = RankContext(img, txt, indices_labeled=labelled, labels=y, **PARAMS)
    for name in RankContext.array_names():
        getattr(ctx, name)
    return ctx


def _given(full, data, names) -> RankContext:
    """A context with no vectors holding only ``names`` (taken from the full context)."""
    _, _, labelled, y = data
    return RankContext.from_arrays(N, {a: getattr(full, a) for a in names}, indices_labeled=labelled,
                                   labels=y, **PARAMS)


def _computed(ctx: RankContext) -> set[str]:
    return set(vars(ctx)) & set(RankContext.array_names())


# -- the one registry type ------------------------------------------------------------------------
def test_strategies_and_selectors_share_one_registry_type():
    assert isinstance(STRATEGIES, Registry) and isinstance(SELECTORS, Registry)
    assert STRATEGIES.get(" Least-Confidence ").name == "least_confidence"
    assert STRATEGIES.get("QBC").name == "vote_entropy" and "kl" in STRATEGIES and "nope" not in STRATEGIES
    assert get_selector("Top-K") is select_topk and SELECTORS.get("KCenter").name == "coreset"
    with pytest.raises(ValueError, match=r"unknown strategy 'nope'; valid: p_misaligned, random"):
        STRATEGIES.get("nope")
    with pytest.raises(ValueError, match=r"unknown diversity/selector 'nope'; valid: none, topk, cluster"):
        SELECTORS.get("nope")
    assert SELECTORS.describe()[0] == ("none", "same as topk")
    assert [s.name for s in STRATEGIES] == STRATEGIES.names() and len(STRATEGIES) == 12


def test_a_registry_refuses_duplicates_and_dangling_aliases():
    Item = namedtuple("Item", "name description")
    with pytest.raises(ValueError, match="registered twice"):
        Registry("item", [Item("a", ""), Item("a", "")])
    with pytest.raises(ValueError, match="name no entry"):
        Registry("item", [Item("a", "")], aliases={"b": "c"})


# -- each strategy's declaration: complete, true and exact -----------------------------------------
@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}{o}" for n, o in CASES])
def test_a_strategy_scores_from_its_declared_arrays_alone(name, options, full, data, monkeypatch):
    """Given only the arrays it declares (no vectors), a strategy gives the full context's scores,
    computes nothing else, and reads every array it declares."""
    strategy = STRATEGIES.get(name)
    needs = strategy.requires(options)
    want = strategy.evaluate(full, options)
    read: set[str] = set()
    original = ContextView.__getattr__

    def recording(view, attr):
        read.add(attr)
        return original(view, attr)

    monkeypatch.setattr(ContextView, "__getattr__", recording)
    ctx = _given(full, data, needs)
    np.testing.assert_array_equal(strategy.evaluate(ctx, options), want)
    assert _computed(ctx) == set(needs)  # nothing derived: the declared arrays were enough
    assert read - ContextView.PARAMETERS == set(needs)  # and each of them is read


def test_reading_an_undeclared_array_raises(full):
    sneaky = Strategy("sneaky", "reads cosine, declares proba", lambda ctx: ctx.cosine, needs=("proba",))
    with pytest.raises(AttributeError, match=r"strategy 'sneaky' reads 'cosine', which it does not declare"):
        sneaky.evaluate(full)
    with pytest.raises(ValueError, match="unknown arrays"):
        Strategy("typo", "", lambda ctx: ctx.probaa, needs=("probaa",))


def test_unknown_options_and_values_raise_before_any_work(data):
    img, txt, labelled, y = data
    ctx = RankContext(img, txt, indices_labeled=labelled, labels=y, **PARAMS)
    with pytest.raises(ValueError, match=r"strategy 'density' has no option bta; valid: beta"):
        compute_from_context(ctx, ["margin", "density"], options={"density": {"bta": 2.0}})
    with pytest.raises(ValueError, match=r"strategy 'margin' has no option beta; valid: on"):
        compute_from_context(ctx, ["margin"], options={"margin": {"beta": 2.0}})
    with pytest.raises(ValueError, match=r"on= must be one of binary, i2t, t2i, both; got 'x2y'"):
        compute_from_context(ctx, ["margin"], options={"Margin": {"on": "x2y"}})
    with pytest.raises(ValueError, match=r"strategy 'random' has no option seed; valid: none"):
        compute_from_context(ctx, ["random"], options={"random": {"seed": 1}})
    assert _computed(ctx) == set()  # refused before anything was computed
    assert STRATEGIES.get("eer").options == {"n_candidates": 200, "n_eval": 1000}


def test_features_alone_give_the_arrays_derived_from_them(full, data):
    ctx = _given(full, data, ["features"])
    for name in sorted(FROM_FEATURES):
        got, want = getattr(ctx, name), getattr(full, name)
        if name == "calibrator":
            np.testing.assert_array_equal(got.weights, want.weights)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
    with pytest.raises(ValueError, match="without vectors"):
        _ = ctx.agree_v  # needs the vectors' neighbours: refused, not computed from a placeholder


# -- engines ----------------------------------------------------------------------------------------
def _engines():
    from mmcurate.engine.incremental import INCREMENTAL
    from mmcurate.engine.ray_score import RAY_ENGINE

    return [RAY_ENGINE, INCREMENTAL]


@pytest.mark.parametrize("engine", _engines(), ids=lambda e: e.name)
def test_an_engines_declaration_is_true(engine: Engine, full, data):
    """A context of what the engine provides scores every strategy it accepts as the local engine
    does; the ones refused for a missing array really cannot be scored from it."""
    for name, options in CASES:
        strategy = STRATEGIES.get(name)
        ctx = _given(full, data, engine.provides)
        if engine.supports(name, options):
            table = compute_from_context(ctx, [name], options={name: options})
            np.testing.assert_array_equal(table[strategy.name], strategy.evaluate(full, options))
        elif engine.strategies is None or name in engine.strategies:
            with pytest.raises(UnsupportedStrategyError, match="does not compute"):
                engine.check([name], {name: options})
            with pytest.raises(ValueError, match="without vectors"):
                strategy.evaluate(ctx, options)
    assert engine.strategies is None or engine.strategies <= set(STRATEGIES.names())


def test_the_ray_engine_refuses_before_any_work(tmp_path):
    from mmcurate.engine.ray_score import RAY_ENGINE, rank_with_ray

    message = ("strategy 'margin' with on=i2t needs retrieval_i2t, which the ray engine does not "
               "compute; use --engine local")
    with pytest.raises(UnsupportedStrategyError) as info:  # no files, no Ray: refused first
        rank_with_ray(tmp_path / "missing.npy", tmp_path / "missing.npy",
                      strategies=["disagreement", "margin"], options={"margin": {"on": "i2t"}})
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and isinstance(info.value, MmcurateError)
    assert RAY_ENGINE.check(["disagreement"]) == {"cosine", "proba", "features", "agree_v", "agree_t"}
    assert "representativeness" in RAY_ENGINE.check(["density"])  # the shards compute it for it


def test_the_incremental_scorer_refuses_before_any_search(tmp_path, data):
    from mmcurate.engine.incremental import PoolScorer

    img, txt, _, _ = data
    scorer = PoolScorer(tmp_path, img[:250], txt[:250], fingerprint="pool", k=5)
    with pytest.raises(UnsupportedStrategyError, match=r"strategy 'entropy' with on=t2i needs retrieval_t2i, "
                                                       r"which the incremental scorer does not compute"):
        scorer.score(img[250:], txt[250:], strategy="entropy", options={"on": "t2i"})
    with pytest.raises(UnsupportedStrategyError, match="'density' is not scored by the incremental scorer"):
        scorer.score(img[250:], txt[250:], strategy="density")
    assert scorer._pending is None and scorer.index.image.ntotal == 250  # nothing added or searched
    assert scorer.score(img[250:], txt[250:], strategy="margin", options={"on": "binary"}).shape == (50,)


def test_the_cli_shows_a_refusal_as_one_line(tmp_path, monkeypatch, capsys):
    """`mmcurate rank --engine ray` has no option flags; the refusal a library call with
    ``on="i2t"`` gets is injected here and goes through the real rank_project and the CLI."""
    from mmcurate import commands, rounds
    from mmcurate.cli import main
    from mmcurate.embed.importer import write_embedding_folder
    from mmcurate.project import create_project

    img, txt, _, _ = domain_shift_embeddings(60, 8, random_state=1)
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(60)], "caption": [f"c{i}" for i in range(60)]})
    folder = write_embedding_folder(tmp_path / "emb", img, txt, meta)
    proj = create_project(tmp_path / "proj", embeddings=folder)
    real = rounds.rank_project

    def with_options(*args, **kwargs):
        return real(*args, **kwargs, options={"least_confidence": {"on": "both"}})

    monkeypatch.setattr(commands, "rank_project", with_options)  # the name `mmcurate rank` calls
    capsys.readouterr()
    code = main(["rank", str(proj.root), "--engine", "ray", "--strategy", "least-confidence"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err == ("mmcurate: error: strategy 'least_confidence' with on=both needs retrieval_i2t, "
                   "retrieval_t2i, which the ray engine does not compute; use --engine local\n")
