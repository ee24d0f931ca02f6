"""Strategy names → scoring functions over a :class:`~mmcurate.rank.RankContext`, and what engines serve.

Each :class:`Strategy` scores a context with one of the pure functions of :mod:`mmcurate.signals`
and declares what it reads: ``needs`` (context arrays, :meth:`RankContext.array_names`), plus
``needs_by`` for arrays that depend on an option's value (``on="i2t"`` reads the retrieval softmax
``retrieval_i2t`` instead of ``proba``); its options are the keyword parameters of its ``score``
function. The declaration is enforced: a strategy is scored on a :class:`ContextView` that holds
only the arrays it declares, and an unknown option or option value raises ``ValueError`` naming the
valid ones. An :class:`Engine` declares the arrays it computes, so it refuses a strategy it cannot
serve before doing any work (:meth:`Engine.check`).

Names accept hyphens or underscores; ``qbc`` is an alias of ``vote_entropy``
(:class:`mmcurate._registry.Registry`, the one registry type). Users add their own with
:func:`register_strategy` (the same contract the built-in entries meet) and take them out with
:func:`unregister_strategy`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mmcurate._registry import Registry, checked_name, entry_description, parameters_of
from mmcurate._util import check_random_state
from mmcurate.exceptions import UnsupportedStrategyError
from mmcurate.rank.context import FROM_FEATURES, RankContext
from mmcurate.signals import change, committee, crossmodal, density, error_reduction, uncertainty

__all__ = ["OBJECTIVES", "STRATEGIES", "TABLE_NEEDS", "Engine", "Strategy", "register_strategy", "resolve",
           "unregister_strategy"]

OBJECTIVES = ("find", "train", "baseline")
"""What a strategy is for (:attr:`Strategy.objective`; ``mmcurate strategies`` groups by it)."""

TABLE_NEEDS = ("cosine", "proba")
"""Arrays every ranking table reads besides its strategies' (its ``cosine`` and ``p_aligned``)."""


@dataclass(frozen=True)
class Strategy:
    """A named query strategy: ``score(view, **options) -> (N,)``, higher = review first.

    ``view`` is a :class:`~mmcurate.rank.ContextView` of the context's ``needs`` arrays (plus
    ``needs_by[option][value]`` for each such option) and its parameters (``n``, ``k``,
    ``random_state``, ``indices_labeled``, ``labels``).

    Examples
    --------
    >>> STRATEGIES.get("margin").requires({"on": "i2t"})
    ('retrieval_i2t',)
    >>> STRATEGIES.get("eer").options
    {'n_candidates': 200, 'n_eval': 1000}
    """

    name: str
    description: str
    score: Callable[..., np.ndarray]
    needs: tuple[str, ...] = ()
    needs_by: Mapping[str, Mapping[Any, tuple[str, ...]]] = field(default_factory=dict, hash=False)
    objective: str = "train"
    """``find``: review the likely-wrong pairs first (recall of noise per label); ``train``: ask for
    the labels that teach the filter most (uncertain pairs, mostly clean); ``baseline``."""

    def __post_init__(self) -> None:
        by_value = [arrays for by in self.needs_by.values() for arrays in by.values()]
        declared = {*self.needs, *(a for arrays in by_value for a in arrays)}
        unknown = sorted(declared - set(RankContext.array_names()))
        if unknown or not set(self.needs_by) <= set(self.options):
            raise ValueError(f"strategy {self.name!r} declares unknown arrays {unknown} or options "
                             f"{sorted(set(self.needs_by) - set(self.options))}")

    @property
    def options(self) -> dict[str, Any]:
        """Accepted keyword options and their defaults (``score``'s parameters after the view)."""
        params = list(inspect.signature(self.score).parameters.values())[1:]
        return {p.name: p.default for p in params}

    def check_options(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``options`` as a dict; an unknown option raises ``ValueError`` listing the valid ones."""
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise ValueError(f"strategy {self.name!r} has no option {', '.join(unknown)}; valid: {valid}")
        return opts

    def requires(self, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The context arrays scoring with ``options`` reads; a value ``needs_by`` lacks raises."""
        opts = self.check_options(options)
        needed = list(self.needs)
        for option, by_value in self.needs_by.items():
            value = opts.get(option, self.options[option])
            if not isinstance(value, Hashable) or value not in by_value:
                raise ValueError(f"strategy {self.name!r}: {option}= must be one of "
                                 f"{', '.join(map(str, by_value))}; got {value!r}")
            needed += by_value[value]
        return tuple(dict.fromkeys(needed))

    def evaluate(self, ctx: RankContext, options: Mapping[str, Any] | None = None) -> npt.NDArray[np.float64]:
        """Scores ``(N,)`` of ``ctx``, reading only the declared arrays; non-finite scores raise."""
        opts = self.check_options(options)
        view = ctx.view(self.requires(opts), reader=f"strategy {self.name!r}")
        scores = np.asarray(self.score(view, **opts), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(scores))
        if len(bad):
            raise ValueError(f"strategy {self.name!r} gave non-finite scores for {len(bad)} of "
                             f"{len(scores)} pairs (rows {bad[:10].tolist()}); expected finite "
                             f"vectors: check them with numpy.isfinite before ranking")
        return scores


def _on(ctx, fn, on: str = "binary"):
    if on == "binary":
        return fn(ctx.proba)
    if on == "i2t":
        return fn(ctx.retrieval_i2t)
    if on == "t2i":
        return fn(ctx.retrieval_t2i)
    if on == "both":
        return (fn(ctx.retrieval_i2t) + fn(ctx.retrieval_t2i)) / 2
    raise ValueError(f"on= must be binary, i2t, t2i or both, got {on!r}")


_ON: dict[str, dict[Any, tuple[str, ...]]] = {"on": {
    "binary": ("proba",), "i2t": ("retrieval_i2t",), "t2i": ("retrieval_t2i",),
    "both": ("retrieval_i2t", "retrieval_t2i")}}
"""What an uncertainty strategy reads by ``on=``: P(aligned), or the retrieval softmaxes."""

STRATEGIES: Registry[Strategy] = Registry("strategy", [
    Strategy("p_misaligned", "finds noise: 1 - P(aligned) of the current model (calibrator + head, "
             "validated on held-back labels each round; the zero-label prior before any)",
             lambda ctx: 1.0 - ctx.proba, needs=("proba",), objective="find"),
    Strategy("random", "uniform random scores (the baseline every strategy must beat)",
             lambda ctx: check_random_state(ctx.random_state).random(ctx.n), objective="baseline"),
    Strategy("clip_score", "1 - cosine(image, caption): the plain CLIP-score filter, no learning",
             lambda ctx: 1.0 - ctx.cosine, needs=("cosine",), objective="find"),
    Strategy("least_confidence", "1 - max(P, 1-P) of the calibrated P(aligned) (on=i2t|t2i|both: "
             "of the retrieval softmax)",
             lambda ctx, on="binary": _on(ctx, uncertainty.least_confidence, on), needs_by=_ON),
    Strategy("margin", "1 - |P(aligned) - P(misaligned)| (on=... as least_confidence)",
             lambda ctx, on="binary": _on(ctx, uncertainty.margin, on), needs_by=_ON),
    Strategy("entropy", "entropy of P(aligned) (on=... as least_confidence)",
             lambda ctx, on="binary": _on(ctx, uncertainty.entropy, on), needs_by=_ON),
    Strategy("disagreement", "cross-modal retrieval disagreement: own caption/image ranks, mutual kNN, "
             "neighbourhood agreement (percentile-averaged)",
             lambda ctx: crossmodal.disagreement(
                 ctx.features.rank_i2t, ctx.features.rank_t2i, ctx.features.z_i2t, ctx.features.z_t2i,
                 ctx.agree_v, ctx.agree_t, k=ctx.k), needs=("features", "agree_v", "agree_t"),
             objective="find"),
    Strategy("density", "information density: margin x (similarity to unlabelled neighbours)^beta",
             lambda ctx, beta=1.0: density.information_density(
                 uncertainty.margin(ctx.proba), ctx.representativeness, beta=beta),
             needs=("proba", "representativeness")),
    Strategy("vote_entropy", "query-by-committee: entropy of the votes of feature views (no labels) "
             "or bootstrap calibrators",
             lambda ctx: committee.vote_entropy(ctx.committee), needs=("committee",)),
    Strategy("kl_divergence", "query-by-committee: mean KL of members to the consensus",
             lambda ctx: committee.kl_divergence(ctx.committee), needs=("committee",)),
    Strategy("egl", "expected gradient length of the calibrator's log loss: 2p(1-p)||x||",
             lambda ctx: change.egl(ctx.proba, ctx.design), needs=("proba", "design")),
    Strategy("eer", "expected error reduction (one Newton step per candidate; subsampled)",
             lambda ctx, n_candidates=200, n_eval=1000: error_reduction.eer(
                 ctx.design, ctx.calibrator.weights, ctx.hessian, exclude=ctx.indices_labeled,
                 n_candidates=n_candidates, n_eval=n_eval, random_state=ctx.random_state),
             needs=("design", "calibrator", "hessian")),
], aliases={"model": "p_misaligned", "qbc": "vote_entropy", "kl": "kl_divergence", "clipscore": "clip_score"})
"""Every query strategy by name (``mmcurate strategies`` lists them)."""


def register_strategy(name: str, score: Callable[..., Any], *, needs: Sequence[str] = (),
                      needs_by: Mapping[str, Mapping[Any, Sequence[str]]] | None = None,
                      description: str | None = None, objective: str = "train",
                      replace: bool = False) -> Strategy:
    """Add a query strategy to :data:`STRATEGIES`, usable by name as a built-in one is: ``rank``
    (local, or Ray when the arrays it reads are ones the Ray engine computes), ``select``, the CLI's
    ``--strategy`` and ``mmcurate strategies``. ``add`` / ``stream`` score arrivals only with the
    strategies whose incremental scores were tested
    (:data:`mmcurate.engine.incremental.INCREMENTAL_STRATEGIES`) and refuse others, saying so.

    Parameters
    ----------
    name : str
        Letters, digits and underscores (hyphens read as underscores; case ignored), starting with
        a letter; a name or alias already taken raises ``ValueError`` unless ``replace=True``
        (aliases are never replaced).
    score : callable
        ``score(view, **options) -> (N,)`` array-like of finite floats, **higher = review first**,
        row i = pair i of the pairs table (converted to float64; a non-finite score raises when it
        is ranked). ``view`` is a :class:`~mmcurate.rank.ContextView`: it holds the context arrays
        named in ``needs`` (``view.proba`` ``(N,)`` P(aligned), ``view.cosine`` ``(N,)``,
        ``view.image_embeddings`` ``(N, D)`` …, :meth:`RankContext.array_names`) and the ranking's
        parameters ``n``, ``k``, ``random_state`` (use :func:`mmcurate._util.check_random_state`),
        ``indices_labeled`` and ``labels``; reading anything else raises ``AttributeError``.
        Every parameter after ``view`` is an option: keyword, with a default (``on="binary"``).
        A pure function: no I/O, no state kept between calls.
    needs : sequence of str
        The context arrays ``score`` reads.
    needs_by : mapping, optional
        Arrays an option's value decides: ``{"on": {"binary": ("proba",), "i2t": ("retrieval_i2t",)}}``.
    description : str, optional
        One line for ``mmcurate strategies`` (default: the first line of ``score``'s docstring).
    objective : {"train", "find", "baseline"}
        ``find``: reviews likely-wrong pairs first; ``train``: asks for the labels that teach most.
    replace : bool
        Replace an entry of the same name (to restore it later, keep ``STRATEGIES.get(name)`` and
        register it again with ``STRATEGIES.register(entry, replace=True)``).

    Returns
    -------
    Strategy
        The entry added. Remove it with :func:`unregister_strategy`.

    Examples
    --------
    >>> def low_cosine(view, power=1.0):
    ...     '''(1 - cosine) ** power: the CLIP score, sharpened.'''
    ...     return (1.0 - view.cosine) ** power
    >>> register_strategy("low_cosine", low_cosine, needs=("cosine",), objective="find").options
    {'power': 1.0}
    >>> STRATEGIES.get("low-cosine").description
    '(1 - cosine) ** power: the CLIP score, sharpened.'
    >>> register_strategy("low_cosine", low_cosine)
    Traceback (most recent call last):
    ValueError: strategy 'low_cosine' is already registered; pass replace=True to replace it
    >>> unregister_strategy("low_cosine").name
    'low_cosine'
    """
    key = checked_name(name, "strategy")
    params = parameters_of(score, f"strategy {name!r}: score", signature="score(view, **options)")
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                            inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise ValueError(f"strategy {name!r}: score must take the context view as its first, "
                         f"positional parameter: score(view, **options)")
    no_default = [p.name for p in params[1:] if p.default is inspect.Parameter.empty
                  or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if no_default:
        raise ValueError(f"strategy {name!r}: every option of score needs a default (keyword "
                         f"parameter after the view); {', '.join(no_default)} has none")
    if objective not in OBJECTIVES:
        raise ValueError(f"strategy {name!r}: objective must be one of {', '.join(OBJECTIVES)}, "
                         f"got {objective!r}")
    if isinstance(needs, str):
        raise ValueError(f"strategy {name!r}: needs must be a sequence of array names, e.g. "
                         f"needs=({needs!r},), not a string")
    entry = Strategy(key, entry_description(description, score, f"strategy {name!r}"), score,
                     needs=tuple(needs), objective=objective,
                     needs_by={opt: {value: tuple(arrays) for value, arrays in by.items()}
                               for opt, by in (needs_by or {}).items()})
    STRATEGIES.register(entry, replace=replace)
    return entry


def unregister_strategy(name: str) -> Strategy:
    """Remove the strategy registered as ``name`` from :data:`STRATEGIES` (with its aliases); returns it."""
    return STRATEGIES.unregister(name)


def resolve(strategies: Sequence[str], options: Mapping[str, Mapping[str, Any] | None] | None = None,
            ) -> list[tuple[Strategy, dict[str, Any]]]:
    """The requested strategies with their options, every name and option checked first.

    ``options`` maps a strategy name (any spelling) to its keyword options; options of a strategy
    not requested are checked too. Raises ``ValueError`` for no strategy, an unknown strategy, an
    unknown option or an option value the strategy does not know.

    Examples
    --------
    >>> [(s.name, opts) for s, opts in resolve(["qbc", "margin"], {"Margin": {"on": "i2t"}})]
    [('vote_entropy', {}), ('margin', {'on': 'i2t'})]
    >>> resolve(["margin"], {"margin": {"beta": 2}})
    Traceback (most recent call last):
    ValueError: strategy 'margin' has no option beta; valid: on
    """
    if not strategies:
        raise ValueError("give at least one strategy; valid: " + ", ".join(STRATEGIES.names()))
    given: dict[str, dict[str, Any]] = {}
    for name, opts in (options or {}).items():
        strat = STRATEGIES.get(name)
        strat.requires(opts)  # unknown options and option values raise here
        given[strat.name] = dict(opts or {})
    return [(strat, given.get(strat.name, {})) for strat in (STRATEGIES.get(s) for s in strategies)]


def _with(opts: Mapping[str, Any]) -> str:
    return " with " + ", ".join(f"{key}={value}" for key, value in opts.items()) if opts else ""


@dataclass(frozen=True)
class Engine:
    """What a scoring engine serves: the context arrays it ``provides`` (plus
    :data:`~mmcurate.rank.FROM_FEATURES` when it provides ``features``), and, when ``strategies`` is
    given, only those strategies. ``fix`` tells the user what to do instead.

    Examples
    --------
    >>> engine = Engine("toy engine", provides=frozenset({"cosine", "features"}), fix="use another")
    >>> sorted(engine.check(["margin"]))
    ['cosine', 'proba']
    >>> engine.check(["margin"], {"margin": {"on": "i2t"}})
    Traceback (most recent call last):
    mmcurate.exceptions.UnsupportedStrategyError: strategy 'margin' with on=i2t needs retrieval_i2t, \
which the toy engine does not compute; use another
    """

    name: str
    provides: frozenset[str]
    fix: str
    strategies: frozenset[str] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(self.provides - set(RankContext.array_names()))
        if unknown or not set(TABLE_NEEDS) <= self.serves:
            raise ValueError(f"the {self.name} declares unknown arrays {unknown} or misses "
                             f"{sorted(set(TABLE_NEEDS) - self.serves)}, which every ranking table reads")

    @property
    def serves(self) -> frozenset[str]:
        """Every context array this engine can give a strategy."""
        return self.provides | (FROM_FEATURES if "features" in self.provides else frozenset())

    def refusal(self, strategy: Strategy, options: Mapping[str, Any] | None = None) -> str | None:
        """Why this engine cannot score ``strategy`` with ``options`` (None: it can)."""
        opts = strategy.check_options(options)
        if self.strategies is not None and strategy.name not in self.strategies:
            return (f"strategy {strategy.name!r} is not scored by the {self.name} (it scores "
                    f"{', '.join(sorted(self.strategies))}); {self.fix}")
        missing = [a for a in strategy.requires(opts) if a not in self.serves]
        if missing:
            return (f"strategy {strategy.name!r}{_with(opts)} needs {', '.join(missing)}, which the "
                    f"{self.name} does not compute; {self.fix}")
        return None

    def supports(self, strategy: str, options: Mapping[str, Any] | None = None) -> bool:
        """Whether :meth:`check` would accept ``strategy`` with ``options``."""
        return self.refusal(STRATEGIES.get(strategy), options) is None

    def check(self, strategies: Sequence[str], options: Mapping[str, Mapping[str, Any] | None] | None = None,
              ) -> frozenset[str]:
        """The arrays a ranking of ``strategies`` needs (with :data:`TABLE_NEEDS`), checked before
        any work; raises :class:`~mmcurate.exceptions.UnsupportedStrategyError` for one this engine
        cannot serve, ``ValueError`` for an unknown name or option."""
        needed = set(TABLE_NEEDS)
        for strat, opts in resolve(strategies, options):
            reason = self.refusal(strat, opts)
            if reason:
                raise UnsupportedStrategyError(reason)
            needed.update(strat.requires(opts))
        return frozenset(needed)
