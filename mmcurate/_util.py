"""Small helpers every stage shares (numpy only): the one random-state check, and the one way a
library call changes process-wide state for a while (:func:`temporarily`).

scikit-learn's ``check_random_state`` semantics (``sklearn/utils/validation.py``), for numpy's
``Generator``: ``None`` → fresh OS entropy, an int → a seeded generator, a ``Generator`` → itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import re
import resource
import sys
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

__all__ = ["RandomState", "check_random_state", "has_visible_text", "int_seed", "sample_key", "sigmoid",
           "temporarily"]

T = TypeVar("T")

RandomState = int | np.random.Generator | None


def check_random_state(random_state: RandomState, *, stream: int | None = None) -> np.random.Generator:
    """The ``Generator`` for ``random_state`` (None: fresh entropy; int: seeded; Generator: itself).

    ``stream`` gives one int seed independent streams for different uses (the seed becomes the
    entropy pair ``[seed, stream]``); it does not apply to a ``Generator`` or ``None``.

    Examples
    --------
    >>> bool(check_random_state(0).integers(100) == check_random_state(0).integers(100))
    True
    >>> rng = np.random.default_rng(1)
    >>> check_random_state(rng) is rng
    True
    >>> check_random_state("0")
    Traceback (most recent call last):
    ...
    TypeError: random_state must be None, an int or a numpy.random.Generator; got str '0'
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
        return np.random.default_rng(seed if stream is None else [seed, int(stream)])
    raise TypeError(f"random_state must be None, an int or a numpy.random.Generator; got "
                    f"{type(random_state).__name__} {random_state!r}")


def int_seed(random_state: RandomState) -> int:
    """An int seed for code that takes only an int (faiss k-means): an int as is, else one drawn
    from :func:`check_random_state` (so ``None`` is fresh entropy and a ``Generator`` advances).

    Examples
    --------
    >>> int_seed(7)
    7
    >>> 0 <= int_seed(None) < 2**31
    True
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).integers(2**31 - 1))


@contextlib.contextmanager
def temporarily(get: Callable[[], T], set_: Callable[[T], Any], value: T) -> Iterator[T]:
    """Set a process-wide setting (torch's thread count, a library flag) to ``value`` for the block
    and put back what it was, also when the block raises; yields the previous value.

    A library call that needs such a setting uses this; only code that owns its process (a worker
    process or Ray actor it created) sets one for good. The setting is process-wide while the block
    runs: other threads see it too.

    Examples
    --------
    >>> box = {"threads": 4}
    >>> with temporarily(lambda: box["threads"], lambda v: box.update(threads=v), 1) as before:
    ...     (before, box["threads"])
    (4, 1)
    >>> box["threads"]
    4
    """
    before = get()
    set_(value)
    try:
        yield before
    finally:
        set_(before)


def peak_rss_gib() -> float:
    """This process's peak resident memory in GiB: ``VmHWM`` of ``/proc/self/status`` (Linux).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's high-water mark over a
    ``vfork`` + ``exec`` (how ``subprocess`` starts children), so a benchmark's child process
    reported its parent's peak when that was higher (1.94 GiB for a 200,000-pair Ray ranking whose
    own peak was 0.44 GiB). Falls back to ``ru_maxrss`` where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    scale = 2**30 if sys.platform == "darwin" else 2**20  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def cost_ratio_line(rows: list[dict]) -> str | None:
    """A benchmark's "cost ratio" line: seconds of the largest run over the smallest, beside the
    size ratio (``rows``: dicts with ``n`` and ``seconds``, smallest first); None for one row."""
    if len(rows) < 2:
        return None
    a, b = rows[0], rows[-1]
    return (f"cost ratio {b['n']:,} / {a['n']:,} pairs: {b['seconds'] / a['seconds']:.1f} "
            f"(size ratio {b['n'] / a['n']:.0f})")


def has_visible_text(text: str) -> bool:
    """Whether ``text`` holds a character a reader sees: not only spaces, control and format
    characters (zero-width spaces and joiners, byte-order marks).

    Examples
    --------
    >>> has_visible_text("a dog"), has_visible_text("\u200b\u200b "), has_visible_text("")
    (True, False, False)
    """
    return any(unicodedata.category(ch)[0] not in "ZC" for ch in text)


_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def sample_key(pair_id: str) -> str:
    """A file-name-safe key for a pair: the id itself when it is ``[A-Za-z0-9_-]``, else a hash.

    WebDataset splits a member name at its first dot, so keys may not contain dots or slashes.

    Examples
    --------
    >>> sample_key("img_001"), sample_key("p.3/x").startswith("id-")
    ('img_001', True)
    """
    if _SAFE_KEY.match(pair_id):
        return pair_id
    return "id-" + hashlib.sha1(pair_id.encode("utf-8")).hexdigest()[:16]


def sigmoid(x: Any) -> Any:
    """The logistic function ``1 / (1 + exp(-x))``, elementwise, in the dtype of ``x``.

    Stable at both ends: where ``exp(-x)`` overflows (``x < -709`` in float64) the result is exactly
    0 (the overflow warning is silenced), and very negative ``x`` keep their relative precision
    (``0.5 * (1 + tanh(x / 2))`` loses it to cancellation).

    Examples
    --------
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x)))
