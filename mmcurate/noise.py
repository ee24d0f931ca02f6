"""Noise injection for simulations and demos: swap a fraction of captions, keeping the truth aside.

Kinds:

- ``random``: a noisy pair gets the caption of another pair chosen uniformly at random.
- ``same_category``: the caption of another pair *of the same category* (hard negatives: the
  caption describes a similar-looking image). Categories with a single pair fall back to random.

Swaps are drawn as a derangement-free permutation among the chosen rows, so every noisy pair's
caption really comes from another pair. Pure numpy; randomness only from ``random_state``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["NOISE_KINDS", "inject_noise"]

NOISE_KINDS = ("random", "same_category")


def _donors(rows: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, a donor index from ``pool`` different from the row itself."""
    donors = rng.choice(pool, size=len(rows))
    clash = donors == rows
    while clash.any() and len(pool) > 1:
        donors[clash] = rng.choice(pool, size=int(clash.sum()))
        clash = donors == rows
    return donors


def inject_noise(
    n: int,
    *,
    rate: float,
    kind: str = "random",
    categories: npt.ArrayLike | None = None,
    captions: npt.ArrayLike | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Choose ``round(rate * n)`` pairs and a donor caption row for each.

    Returns
    -------
    caption_source : int64 (n,)
        Row whose caption (and caption vector) pair i now carries; ``i`` itself when clean.
    is_noisy : bool (n,)
        Ground truth: True where the caption was swapped (and, when ``captions`` is given, the
        donor's caption text differs from the original: swapping two identical captions is no noise).

    Examples
    --------
    >>> src, noisy = inject_noise(10, rate=0.2, random_state=0)
    >>> int(noisy.sum()), bool((src[noisy] != np.flatnonzero(noisy)).all())
    (2, True)
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    rng = np.random.default_rng(random_state)
    source = np.arange(n, dtype=np.int64)
    noisy = np.zeros(n, dtype=bool)
    rows = np.sort(rng.choice(n, size=round(rate * n), replace=False)) if n else source[:0]
    if kind == "random" or categories is None:
        source[rows] = _donors(rows, np.arange(n), rng)
    else:
        cats = np.asarray(categories)
        if len(cats) != n:
            raise ValueError(f"categories has {len(cats)} entries for {n} pairs")
        for cat in np.unique(cats[rows]):
            members = rows[cats[rows] == cat]
            pool = np.flatnonzero(cats == cat)
            source[members] = _donors(members, pool if len(pool) > 1 else np.arange(n), rng)
    noisy[rows] = source[rows] != rows
    if captions is not None:
        text = np.asarray(captions, dtype=object)
        noisy &= text[source] != text
    return source, noisy
