"""One registry type: names → entries, as an explicit object (no module global filled at import).

Query strategies (:data:`mmcurate.rank.STRATEGIES`) and batch selectors
(:data:`mmcurate.select.SELECTORS`) are both a :class:`Registry` over their own entry type. A name
is looked up after :func:`normalise_name` (case and surrounding space ignored, hyphen = underscore)
and through the aliases; an unknown name raises ``ValueError`` listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

__all__ = ["Registry", "normalise_name"]


class Entry(Protocol):
    """What a registry holds: anything with a ``name`` and a one-line ``description``."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...


E = TypeVar("E", bound=Entry)


def normalise_name(name: str) -> str:
    """The lookup key of a name: stripped, lower case, hyphens as underscores.

    Examples
    --------
    >>> normalise_name(" Least-Confidence ")
    'least_confidence'
    """
    return name.strip().lower().replace("-", "_")


class Registry(Generic[E]):
    """Entries by name (see the module docstring), in registration order.

    Parameters
    ----------
    kind : str
        What the entries are, for error messages (``"strategy"``).
    entries : iterable of entries
        Each with a unique ``name`` (already normalised).
    aliases : mapping, optional
        Other names of entries: alias → entry name.
    listed : sequence of str, optional
        Aliases that are also listed (in :meth:`describe` and the valid names of an error), before
        the entries, as ``"same as <entry>"``.

    Examples
    --------
    >>> from collections import namedtuple
    >>> Item = namedtuple("Item", "name description")
    >>> reg = Registry("item", [Item("top_k", "the best")], aliases={"none": "top_k"}, listed=["none"])
    >>> reg.get("Top-K").name, reg.get("none").name, "nope" in reg
    ('top_k', 'top_k', False)
    >>> reg.describe()
    [('none', 'same as top_k'), ('top_k', 'the best')]
    """

    def __init__(self, kind: str, entries: Iterable[E], *, aliases: Mapping[str, str] | None = None,
                 listed: Sequence[str] = ()) -> None:
        self.kind = kind
        self._by_name: dict[str, E] = {}
        for entry in entries:
            if normalise_name(entry.name) != entry.name or entry.name in self._by_name:
                raise ValueError(f"{kind} name {entry.name!r} is not normalised or is registered twice")
            self._by_name[entry.name] = entry
        self._aliases = {normalise_name(a): target for a, target in (aliases or {}).items()}
        bad = sorted(a for a, target in self._aliases.items()
                     if target not in self._by_name or a in self._by_name)
        if bad or not set(listed) <= set(self._aliases):
            raise ValueError(f"{kind} aliases {bad or list(listed)} name no entry or shadow one")
        self._listed = tuple(listed)

    def _key(self, name: str) -> str:
        key = normalise_name(name)
        return self._aliases.get(key, key)

    def get(self, name: str) -> E:
        """The entry registered as ``name`` (or an alias of it)."""
        key = self._key(name)
        if key not in self._by_name:
            valid = ", ".join([*self._listed, *self._by_name])
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {valid}")
        return self._by_name[key]

    def names(self) -> list[str]:
        """The entries' names, in registration order (aliases not included)."""
        return list(self._by_name)

    def describe(self) -> list[tuple[str, str]]:
        """``(name, description)`` rows: the listed aliases, then every entry."""
        return ([(a, f"same as {self._aliases[a]}") for a in self._listed]
                + [(e.name, e.description) for e in self._by_name.values()])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._by_name

    def __iter__(self) -> Iterator[E]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)
