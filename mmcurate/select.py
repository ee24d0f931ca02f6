"""Batch selection under a budget: pure functions over arrays, one shared signature.

``select_<name>(scores, *, n, embeddings=None, indices_labeled=None, exclude=None, random_state=None,
**options)`` returns ``n`` unique int64 row indices, best first, never one in ``indices_labeled``
(pairs with a label, or queued for one) or ``exclude`` (any other pair not to pick, e.g. a held-out
evaluation set); fewer than ``n`` candidates raises :class:`PoolExhaustedError`. Only
``indices_labeled`` shapes diversity (core-set's centres), as small-text's
``greedy_coreset(x, indices_unlabeled, indices_labeled, n)``; ``random_state`` is None (fresh
entropy), an int or a ``numpy.random.Generator`` (:func:`mmcurate._util.check_random_state`).

- ``topk``: the n highest scores.
- ``cluster``: spherical k-means on the embeddings; each cluster gets a quota (``proportional`` to
  its candidates or ``uniform``, largest-remainder rounding, unused quota redistributed) filled by
  its best-scored pairs; output interleaved by score.
- ``coreset``: k-center greedy (Sener & Savarese 2018) over the top ``candidates`` by score
  (``10 * n`` by default; ``candidates=0`` for the whole pool, i.e. pure k-center that ignores the
  score), seeded with the labelled pairs (``indices_labeled``) as centres: each pick is the candidate farthest
  from every centre so far. Distances are updated in float32 chunks (no N×N matrix).
- ``sample``: Monte Carlo sampling without replacement ∝ score^(1/T) (Gumbel-top-k), or
  ``method="badge"``: k-means++ seeding over given gradient embeddings (Ash et al. 2020).

:func:`select_balanced` wraps any of these to give every category (e.g. the pairs' ``category``
column) a share of the batch, so rare categories are not starved by common high scorers: equal
quotas (``uniform``) or quotas proportional to the category's candidates with a floor
(``proportional``); each category's share is chosen by the named selector on that category's rows.
It takes the extra ``categories`` argument, so it is not in :data:`SELECTORS`.

Users add their own selector with :func:`register_selector` (the shared signature above; what it
returns is checked on every call) and take it out with :func:`unregister_selector`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mmcurate._registry import Registry, checked_name, entry_description, parameters_of
from mmcurate._util import check_random_state, int_seed
from mmcurate.exceptions import PoolExhaustedError
from mmcurate.index import kmeans

__all__ = ["SELECTORS", "Selector", "get_selector", "register_selector", "select_balanced", "select_cluster",
           "select_coreset", "select_sample", "select_topk", "unregister_selector"]


def _candidates(scores, n: int, exclude, indices_labeled=None) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    if int(n) <= 0:
        raise ValueError(f"n must be positive, got {n}")
    mask = np.ones(len(s), bool)
    for rows in (exclude, indices_labeled):
        if rows is not None:
            ex = np.asarray(rows, dtype=np.int64)
            mask[ex[(ex >= 0) & (ex < len(s))]] = False
    cand = np.flatnonzero(mask)
    if len(cand) < n:
        raise PoolExhaustedError(f"asked for {n} pairs but only {len(cand)} are neither labelled nor queued")
    return s, cand


def _by_score(s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return idx[np.argsort(-s[idx], kind="stable")]


def select_topk(scores, *, n: int, embeddings=None, indices_labeled=None, exclude=None,
                random_state=None) -> npt.NDArray[np.int64]:
    """The ``n`` highest-scoring candidates (ties by index).

    Examples
    --------
    >>> select_topk(np.array([0.1, 0.9, 0.5]), n=2).tolist()
    [1, 2]
    """
    s, cand = _candidates(scores, n, exclude, indices_labeled)
    return _by_score(s, cand)[:n].astype(np.int64)


def _quotas(sizes: np.ndarray, n: int, mode: str) -> np.ndarray:
    weights = sizes.astype(float) if mode == "proportional" else (sizes > 0).astype(float)
    raw = n * weights / weights.sum()
    quota = np.minimum(np.floor(raw).astype(int), sizes)
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    while quota.sum() < n:
        room = quota < sizes
        for c in order:
            if quota.sum() >= n:
                break
            if room[c]:
                quota[c] += 1
    return quota


def select_cluster(scores, *, n: int, embeddings=None, indices_labeled=None, exclude=None, random_state=None,
                   n_clusters: int | None = None, quotas: str = "proportional") -> npt.NDArray[np.int64]:
    """Best-scored pairs per k-means cluster, with quotas (see module docstring)."""
    s, cand = _candidates(scores, n, exclude, indices_labeled)
    if embeddings is None:
        raise ValueError("select_cluster needs embeddings (N, D)")
    if quotas not in ("proportional", "uniform"):
        raise ValueError(f"quotas must be proportional or uniform, got {quotas!r}")
    K = int(min(n_clusters or max(2, n // 2), len(cand)))
    _, assign = kmeans(np.asarray(embeddings)[cand], K, random_state=int_seed(random_state))
    sizes = np.bincount(assign, minlength=K)
    quota = _quotas(sizes, n, quotas)
    picked = []
    for c in range(K):
        members = cand[assign == c]
        picked.append(_by_score(s, members)[: quota[c]])
    return _by_score(s, np.concatenate(picked)).astype(np.int64)[:n]


def select_coreset(scores, *, n: int, embeddings=None, indices_labeled=None, exclude=None,
                   random_state=None, candidates: int | None = None,
                   chunk: int = 65536) -> npt.NDArray[np.int64]:
    """k-center greedy among the high scorers, seeded with the labelled pairs as centres.

    ``indices_labeled`` are the centres k-center starts from (and are never picked); ``exclude``
    is only left out of the candidates, so a held-out evaluation set does not shape the batch.

    Parameters
    ----------
    candidates : int, optional
        Size of the pool k-center runs over: the top ``candidates`` candidates by score (at least
        ``n``). Default (None): ``10 * n``, so the batch is diverse *among pairs worth reviewing*.
        ``0``: the whole pool (pure k-center, ignoring the score).
    chunk : int
        Rows per float32 block when updating distances to the labelled centres.

    Examples
    --------
    >>> emb = np.eye(3, dtype=np.float32)
    >>> select_coreset(np.array([0.9, 0.8, 0.1]), n=1, embeddings=emb, indices_labeled=[0]).tolist()
    [1]
    """
    s, cand = _candidates(scores, n, exclude, indices_labeled)
    if embeddings is None:
        raise ValueError("select_coreset needs embeddings (N, D)")
    if candidates is not None and int(candidates) < 0:
        raise ValueError(f"candidates must be >= 0 (0 = the whole pool), got {candidates}")
    size = 10 * int(n) if candidates is None else (int(candidates) or len(cand))
    emb = np.asarray(embeddings)
    pool = _by_score(s, cand)[: max(size, n)]
    X = np.asarray(emb[pool], dtype=np.float32)
    dist = np.full(len(pool), np.inf, dtype=np.float32)
    seeds = np.asarray(indices_labeled if indices_labeled is not None else [], np.int64)
    for start in range(0, len(seeds), 1024):
        C = np.asarray(emb[seeds[start : start + 1024]], dtype=np.float32)
        for a in range(0, len(X), chunk):
            d = 2.0 - 2.0 * (X[a : a + chunk] @ C.T)
            dist[a : a + chunk] = np.minimum(dist[a : a + chunk], d.min(1))
    picked = []
    for _ in range(n):
        i = int(np.argmax(dist)) if np.isfinite(dist).any() else 0
        if not np.isfinite(dist[i]):  # no centre yet: start from the best score
            i = 0
        picked.append(i)
        d = 2.0 - 2.0 * (X @ X[i])
        dist = np.minimum(dist, d)
        dist[i] = -np.inf
    return pool[np.asarray(picked)].astype(np.int64)


def select_sample(scores, *, n: int, embeddings=None, indices_labeled=None, exclude=None,
                  random_state=None, temperature: float = 1.0,
                  method: str = "score") -> npt.NDArray[np.int64]:
    """Sampling ∝ score^(1/T) without replacement (Gumbel-top-k), or BADGE k-means++ seeding."""
    s, cand = _candidates(scores, n, exclude, indices_labeled)
    rng = check_random_state(random_state)
    if method == "badge":
        if embeddings is None:
            raise ValueError("method='badge' needs gradient embeddings")
        return _kmeanspp(np.asarray(embeddings, np.float32)[cand], n, rng, cand)
    if method != "score":
        raise ValueError(f"method must be 'score' or 'badge', got {method!r}")
    shifted = s[cand] - s[cand].min() + 1e-12
    keys = np.log(shifted) / temperature + rng.gumbel(size=len(cand))
    return cand[np.argsort(-keys, kind="stable")[:n]].astype(np.int64)


def _kmeanspp(X: np.ndarray, n: int, rng: np.random.Generator, cand: np.ndarray) -> np.ndarray:
    norms = (X * X).sum(1)
    first = int(np.argmax(norms))
    picked = [first]
    d2 = np.maximum(norms + norms[first] - 2 * X @ X[first], 0)
    for _ in range(n - 1):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(d2), 1 / len(d2))
        p[picked] = 0
        p = p / p.sum()
        i = int(rng.choice(len(X), p=p))
        picked.append(i)
        d2 = np.minimum(d2, np.maximum(norms + norms[i] - 2 * X @ X[i], 0))
    return cand[np.asarray(picked)].astype(np.int64)


def _category_codes(categories, n_rows: int) -> np.ndarray:
    cats = np.asarray(categories)
    if cats.shape != (n_rows,):
        raise ValueError(f"categories must hold one label per score ({n_rows}), got shape {cats.shape}")
    try:
        return np.unique(cats, return_inverse=True)[1].reshape(-1)
    except TypeError as err:
        raise ValueError("categories must be labels of one comparable type (e.g. all str); got a "
                         "mixture: convert them first, e.g. with .astype(str)") from err


def _fill_by_score(quota: np.ndarray, ranked: list[np.ndarray], n: int) -> np.ndarray:
    """Give the slots still free to the best-scored candidates beyond each category's quota."""
    left = n - int(quota.sum())
    if left <= 0:
        return quota
    rest_s = np.concatenate([r[q:] for r, q in zip(ranked, quota, strict=True)])
    rest_c = np.concatenate([np.full(len(r) - q, c) for c, (r, q) in enumerate(zip(ranked, quota,
                                                                                  strict=True))])
    top = np.argsort(-rest_s, kind="stable")[:left]
    return quota + np.bincount(rest_c[top], minlength=len(quota))


def _uniform_quota(sizes: np.ndarray, n: int, ranked: list[np.ndarray]) -> np.ndarray:
    quota = np.minimum(sizes, n // len(sizes))
    extra = n - (n // len(sizes)) * len(sizes)  # the rounding remainder: at most one more each
    nxt = np.array([r[q] if q < len(r) else -np.inf for r, q in zip(ranked, quota, strict=True)])
    for c in np.argsort(-nxt, kind="stable")[:extra]:
        quota[c] += int(np.isfinite(nxt[c]))
    return _fill_by_score(quota, ranked, n)


def _proportional_quota(sizes: np.ndarray, n: int, floor: int, ranked: list[np.ndarray]) -> np.ndarray:
    lower = np.minimum(sizes, floor)
    if lower.sum() > n:  # the floor cannot be met: categories with the best top score first
        quota = np.zeros_like(sizes)
        for c in np.argsort(-np.array([r[0] for r in ranked]), kind="stable"):
            quota[c] = min(lower[c], n - quota.sum())
        return quota
    fixed = np.zeros(len(sizes), bool)
    while True:  # categories whose proportional share is below the floor get the floor
        free = ~fixed
        raw = np.where(fixed, lower, 0.0).astype(float)
        if free.any():
            raw[free] = (n - lower[fixed].sum()) * sizes[free] / sizes[free].sum()
        below = free & (raw < lower)
        if not below.any():
            break
        fixed |= below
    quota = np.minimum(np.floor(raw).astype(int), sizes)
    for c in np.argsort(-(raw - np.floor(raw)), kind="stable"):  # largest remainder
        if quota.sum() < n and quota[c] < sizes[c] and raw[c] > quota[c]:
            quota[c] += 1
    return _fill_by_score(quota, ranked, n)


def select_balanced(scores, *, n: int, categories: npt.ArrayLike, embeddings=None, indices_labeled=None,
                    exclude=None, random_state=None, mode: str = "uniform", floor: int = 1,
                    within: str = "topk", **options) -> npt.NDArray[np.int64]:
    """Give every category a share of the batch; each share chosen by the ``within`` selector.

    Only categories with candidates (pairs neither excluded nor queued) take part.

    - ``mode="uniform"``: ``n // C`` per category (C categories with candidates), the remainder one
      each to the categories whose next candidate scores best; quota a category cannot use (too
      few candidates) goes to the best-scored remaining candidates of the others.
    - ``mode="proportional"``: quotas ∝ each category's candidate count, but at least ``floor``
      (capped at its candidates); the floored categories are fixed and the rest share what is left,
      largest-remainder rounding. When ``n < floor · C`` the categories with the best top score
      get their floor first.

    Parameters
    ----------
    scores : (N,)
        Higher = review first.
    n : int
        Batch size.
    categories : (N,)
        A label per pair (any comparable values: str, int).
    embeddings : (N, D), optional
        Passed to ``within`` restricted to each category's rows.
    indices_labeled : array of int, optional
        Labelled rows, never returned; mapped into each category for ``within`` (so ``coreset``
        seeds with that category's labelled pairs).
    exclude : array of int, optional
        Other rows never returned; mapped into each category for ``within``.
    random_state : int or Generator, optional
        Passed to ``within`` unchanged for every category.
    mode : {"uniform", "proportional"}
    floor : int
        Minimum per category with candidates in ``proportional`` mode (default 1).
    within : str
        A registered selector name (``topk``, ``cluster``, ``coreset``, ``sample``).
    **options
        Passed to ``within`` (e.g. ``candidates=`` for ``coreset``).

    Returns
    -------
    (n,) int64
        Unique row indices, best score first.

    Examples
    --------
    >>> scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    >>> select_balanced(scores, n=2, categories=["a", "a", "a", "a", "b"]).tolist()
    [0, 4]
    """
    s, cand = _candidates(scores, n, exclude, indices_labeled)
    if mode not in ("uniform", "proportional"):
        raise ValueError(f"mode must be 'uniform' or 'proportional', got {mode!r}")
    if int(floor) < 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    fn = get_selector(within)
    codes = _category_codes(categories, len(s))
    present, cand_codes = np.unique(codes[cand], return_inverse=True)
    ranked = [np.sort(s[cand[cand_codes == c]])[::-1] for c in range(len(present))]
    sizes = np.array([len(r) for r in ranked])
    quota = (_uniform_quota(sizes, int(n), ranked) if mode == "uniform"
             else _proportional_quota(sizes, int(n), int(floor), ranked))
    excluded = np.ones(len(s), bool)
    excluded[cand] = False
    labeled = np.zeros(len(s), bool)
    if indices_labeled is not None:
        lab = np.asarray(indices_labeled, dtype=np.int64)
        labeled[lab[(lab >= 0) & (lab < len(s))]] = True
    excluded &= ~labeled
    emb = None if embeddings is None else np.asarray(embeddings)
    picked = []
    for c, code in enumerate(present):
        if quota[c] == 0:
            continue
        rows = np.flatnonzero(codes == code)
        sub = fn(s[rows], n=int(quota[c]), embeddings=None if emb is None else emb[rows],
                 indices_labeled=np.flatnonzero(labeled[rows]), exclude=np.flatnonzero(excluded[rows]),
                 random_state=random_state, **options)
        picked.append(rows[sub])
    return _by_score(s, np.concatenate(picked)).astype(np.int64)


@dataclass(frozen=True)
class Selector:
    """A named selector: ``fn(scores, *, n, embeddings=None, indices_labeled=None, exclude=None,
    random_state=None, **options)`` (the shared signature of the module docstring)."""

    name: str
    description: str
    fn: Callable[..., np.ndarray]


SELECTORS: Registry[Selector] = Registry("diversity/selector", [
    Selector("topk", "the highest scores", select_topk),
    Selector("cluster", "best per k-means cluster, proportional or uniform quotas", select_cluster),
    Selector("coreset", "k-center greedy among the top 10 x budget by score, seeded with the labelled "
             "pairs (Python: candidates=0 = the whole pool)", select_coreset),
    Selector("sample", "sampling proportional to score^(1/T); method=badge for k-means++", select_sample),
], aliases={"none": "topk", "top_k": "topk", "kcenter": "coreset", "monte_carlo": "sample"}, listed=["none"])
"""Diversity modes by name (hyphen/underscore insensitive); ``none`` = ``topk``."""


def get_selector(name: str) -> Callable[..., np.ndarray]:
    """The selector function registered as ``name``."""
    return SELECTORS.get(name).fn


_SHARED = ("n", "embeddings", "indices_labeled", "exclude", "random_state")


def register_selector(name: str, fn: Callable[..., npt.ArrayLike], *, description: str | None = None,
                      replace: bool = False) -> Selector:
    """Add a batch selector to :data:`SELECTORS`, usable as ``select_batch(diversity=name)`` and
    ``mmcurate select --diversity NAME``.

    Parameters
    ----------
    name : str
        Letters, digits and underscores (hyphens read as underscores; case ignored); a name or alias
        already taken raises ``ValueError`` unless ``replace=True`` (aliases are never replaced).
    fn : callable
        ``fn(scores, *, n, embeddings=None, indices_labeled=None, exclude=None, random_state=None,
        **options) -> (n,)`` row indices, best first: ``scores`` ``(N,)`` float64, higher = review
        first; ``embeddings`` ``(N, D)`` or None; ``indices_labeled`` / ``exclude`` int64 rows never
        to return; ``random_state`` None, an int or a ``Generator``
        (:func:`mmcurate._util.check_random_state`). Fewer than ``n`` candidates raises
        :class:`~mmcurate.exceptions.PoolExhaustedError` (checked before ``fn`` is called). Every
        call's result is checked: ``n`` unique in-range indices, none labelled or excluded
        (``ValueError`` naming the selector).
    description : str, optional
        One line for ``mmcurate strategies`` (default: the first line of ``fn``'s docstring).
    replace : bool
        Replace an entry of the same name.

    Returns
    -------
    Selector
        The entry added. Remove it with :func:`unregister_selector`.

    Examples
    --------
    >>> def lowest_index(scores, *, n, embeddings=None, indices_labeled=None, exclude=None,
    ...                  random_state=None):
    ...     "The first n candidates in table order."
    ...     taken = set(np.r_[[] if exclude is None else exclude,
    ...                       [] if indices_labeled is None else indices_labeled].astype(int).tolist())
    ...     return [i for i in range(len(scores)) if i not in taken][:n]
    >>> register_selector("lowest_index", lowest_index).description
    'The first n candidates in table order.'
    >>> get_selector("lowest-index")(np.array([0.3, 0.2, 0.9]), n=2, exclude=[0]).tolist()
    [1, 2]
    >>> unregister_selector("lowest_index").name
    'lowest_index'
    """
    key = checked_name(name, "selector")
    params = parameters_of(fn, f"selector {name!r}", signature="fn(scores, *, n, embeddings=None, "
                           "indices_labeled=None, exclude=None, random_state=None)")
    names = {p.name for p in params}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    missing = [a for a in _SHARED if a not in names and not takes_any]
    if not params or params[0].kind is inspect.Parameter.KEYWORD_ONLY or missing:
        raise ValueError(f"selector {name!r} must take the shared signature fn(scores, *, n, "
                         f"embeddings=None, indices_labeled=None, exclude=None, random_state=None); "
                         f"it lacks {', '.join(missing) or 'a positional scores parameter'}")
    entry = Selector(key, entry_description(description, fn, f"selector {name!r}"), _checked(key, fn))
    SELECTORS.register(entry, replace=replace)
    return entry


def unregister_selector(name: str) -> Selector:
    """Remove the selector registered as ``name`` from :data:`SELECTORS` (with its aliases); returns it."""
    return SELECTORS.unregister(name)


def _checked(name: str, fn: Callable[..., npt.ArrayLike]) -> Callable[..., np.ndarray]:
    """``fn`` whose every result is checked against the selector contract (module docstring)."""

    @functools.wraps(fn)
    def selector(scores, *, n: int, embeddings=None, indices_labeled=None, exclude=None,
                 random_state=None, **options) -> npt.NDArray[np.int64]:
        s, cand = _candidates(scores, n, exclude, indices_labeled)  # bad input / exhausted: as built-ins
        picked = np.asarray(fn(s, n=n, embeddings=embeddings, indices_labeled=indices_labeled,
                               exclude=exclude, random_state=random_state, **options))
        if picked.ndim != 1 or (len(picked) and not np.issubdtype(picked.dtype, np.integer)):
            raise ValueError(f"selector {name!r} returned {picked.dtype} of shape {picked.shape}; "
                             f"expected {int(n)} integer row indices")
        picked = picked.astype(np.int64)
        allowed = np.zeros(len(s), bool)
        allowed[cand] = True
        inside = (picked >= 0) & (picked < len(s))
        bad = picked[~inside | ~allowed[np.clip(picked, 0, len(s) - 1)]]
        if len(picked) != int(n) or len(np.unique(picked)) != len(picked) or len(bad):
            raise ValueError(f"selector {name!r} returned {len(picked)} indices ({len(np.unique(picked))} "
                             f"unique) for n={int(n)}, {len(bad)} of them out of range, labelled or "
                             f"excluded (e.g. {bad[:5].tolist()}); a selector returns n unique rows of "
                             f"the candidates, best first")
        return picked

    return selector
