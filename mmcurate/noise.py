"""Noise injection for simulations and demos: swap a fraction of captions, keeping the truth aside.

``round(rate * n)`` pairs are chosen and their captions are *permuted among themselves*: every
chosen pair gets the caption of another chosen pair and gives its own to a third (or to the
first), so each donor is used exactly once, no pair keeps its own caption and the injection
never duplicates a caption (``caption_source`` is a permutation of ``0..n-1``). Within a swap
group the permutation is one random cycle over the group's chosen rows in shuffled order, so a
noisy pair's donor is uniform among the group's other chosen pairs.

Kinds (the swap groups):

- ``random``: all chosen pairs form one group.
- ``same_category``: the chosen pairs of each category form a group (hard negatives: the caption
  describes a similar-looking image), so ``categories[caption_source] == categories``. Categories
  with a single pair in the whole data set are pooled into one group that swaps across them (a
  lone such pair, or ``n == 1``, can never be swapped and is never chosen).

A group needs at least two chosen pairs. After the uniform draw, groups holding exactly one are
repaired so that the count stays ``round(rate * n)`` where possible: such groups are paired up at
random and in each pair one group gives up its row while the other gets a second one of its own
members; an odd one left over gets a second member while a group with three or more chosen pairs
gives one back, or else gives up its row to a group with two or more chosen pairs that still has an
unchosen member, or else (e.g. ``round(rate * n) == 1``) keeps both and the count is one above
``round(rate * n)``. The chosen set is therefore close to, not exactly, a uniform draw.

With ``captions``, a swap between two identical caption texts is no noise (``is_noisy`` False).
Pure numpy; randomness only from ``random_state``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmcurate._util import check_random_state

__all__ = ["NOISE_KINDS", "inject_noise"]

NOISE_KINDS = ("random", "same_category")


def _swap_groups(n: int, kind: str, categories: npt.ArrayLike | None) -> npt.NDArray[np.int64]:
    """Swap group ``0..G-1`` of each row (swaps stay within a group); -1 = never swappable."""
    if kind == "random" or categories is None:
        group = np.zeros(n, dtype=np.int64)
    else:
        cats = np.asarray(categories)
        if len(cats) != n:
            raise ValueError(f"categories has {len(cats)} entries for {n} pairs")
        _, inverse, counts = np.unique(cats, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        group = np.where(counts[inverse] == 1, len(counts), inverse).astype(np.int64)
    sizes = np.bincount(group, minlength=1)
    group[sizes[group] < 2] = -1
    _, group[group >= 0] = np.unique(group[group >= 0], return_inverse=True)
    return group


class _Chosen:
    """The chosen rows as a mask plus per-group counts, with the members of each group at hand."""

    def __init__(self, rows: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> None:
        self.group, self.rng = group, rng
        self.mask = np.zeros(len(group), dtype=bool)
        self.mask[rows] = True
        n_groups = int(group.max()) + 1 if len(group) else 0
        self.order = np.argsort(group, kind="stable")
        self.bounds = np.searchsorted(group[self.order], np.arange(-1, n_groups) + 1)
        self.count = np.bincount(group[rows], minlength=n_groups)
        self.size = np.diff(self.bounds)

    def _members(self, g: int, chosen: bool) -> np.ndarray:
        rows = self.order[self.bounds[g]:self.bounds[g + 1]]
        return rows[self.mask[rows] == chosen]

    def add(self, g: int) -> None:
        self.mask[self.rng.choice(self._members(g, False))] = True
        self.count[g] += 1

    def drop(self, g: int) -> None:
        self.mask[self.rng.choice(self._members(g, True))] = False
        self.count[g] -= 1


def _repair_lone(rows: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows with no group holding exactly one of them (see module docstring), sorted."""
    chosen = _Chosen(rows, group, rng)
    lone = rng.permutation(np.flatnonzero(chosen.count == 1))
    for give, take in zip(lone[0::2], lone[1::2]):
        chosen.drop(int(give))
        chosen.add(int(take))
    if len(lone) % 2:
        odd = int(lone[-1])
        spare = np.flatnonzero(chosen.count >= 3)
        room = np.flatnonzero((chosen.count >= 2) & (chosen.size > chosen.count))
        if len(spare):
            chosen.add(odd)
            chosen.drop(int(rng.choice(spare)))
        elif len(room):
            chosen.drop(odd)
            chosen.add(int(rng.choice(room)))
        else:
            chosen.add(odd)
    return np.flatnonzero(chosen.mask)


def _cycle_sources(rows: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each of ``rows`` (every group ≥ 2 of them), its donor: one shuffled cycle per group."""
    if not len(rows):
        return rows.astype(np.int64)
    order = rows[np.lexsort((rng.random(len(rows)), group[rows]))]
    g = group[order]
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    last = np.r_[first[1:] - 1, len(order) - 1]
    prev = np.arange(len(order)) - 1
    prev[first] = last
    donors = np.empty(len(group), dtype=np.int64)
    donors[order] = order[prev]
    return donors[rows]


def inject_noise(
    n: int,
    *,
    rate: float,
    kind: str = "random",
    categories: npt.ArrayLike | None = None,
    captions: npt.ArrayLike | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Choose ``round(rate * n)`` pairs and permute their captions among them.

    Parameters
    ----------
    n : int
        Number of pairs ``N``.
    rate : float
        Fraction of pairs to swap, in [0, 1].
    kind : {"random", "same_category"}
        Swap among all chosen pairs, or only among the chosen pairs of the same category.
    categories : array-like (n,), optional
        Category of each pair (needed for ``same_category``; without it the swaps are random).
    captions : array-like (n,), optional
        Caption texts; a swap that brings an identical text is not counted as noise.
    random_state : int, Generator or None
        Seed; the same seed gives the same swaps.

    Returns
    -------
    caption_source : int64 (n,)
        Row whose caption (and caption vector) pair i now carries; ``i`` itself when clean. A
        permutation of ``0..n-1`` (see the module docstring for the count and edge cases).
    is_noisy : bool (n,)
        Ground truth: True where the caption was swapped (and, when ``captions`` is given, the
        donor's caption text differs from the original: swapping two identical captions is no noise).

    Examples
    --------
    >>> src, noisy = inject_noise(10, rate=0.2, random_state=0)
    >>> int(noisy.sum()), bool((src[noisy] != np.flatnonzero(noisy)).all())
    (2, True)
    >>> sorted(src.tolist()) == list(range(10))
    True
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    rng = check_random_state(random_state)
    group = _swap_groups(n, kind, categories)
    eligible = np.flatnonzero(group >= 0)
    rows = rng.choice(eligible, size=min(round(rate * n), len(eligible)), replace=False)
    rows = _repair_lone(rows, group, rng)
    source = np.arange(n, dtype=np.int64)
    source[rows] = _cycle_sources(rows, group, rng)
    noisy = source != np.arange(n)
    if captions is not None:
        text = np.asarray(captions, dtype=object)
        noisy &= text[source] != text
    return source, noisy
