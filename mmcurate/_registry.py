"""One registry type: names → entries, as an explicit object (no module global filled at import).

Query strategies (:data:`mmcurate.rank.STRATEGIES`) and batch selectors
(:data:`mmcurate.select.SELECTORS`) are both a :class:`Registry` over their own entry type. A name
is looked up after :func:`normalise_name` (case and surrounding space ignored, hyphen = underscore)
and through the aliases; an unknown name raises ``ValueError`` listing the valid ones.

A registry is open to extension: :meth:`Registry.register` adds an entry (refusing a name or alias
already taken unless ``replace=True``) and :meth:`Registry.unregister` takes one out again (a test
that registers cleans up with it). The public doors are :func:`mmcurate.rank.register_strategy`,
:func:`mmcurate.select.register_selector` and :func:`mmcurate.data.register_format`, which check the
entry before it is added.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Registry", "checked_name", "entry_description", "normalise_name", "parameters_of"]


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
        Each with a unique ``name`` (unique after :func:`normalise_name`; the entry keeps its own
        spelling, e.g. ``"hf-disk"``, for listings).
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
            if normalise_name(entry.name) in self._by_name:
                raise ValueError(f"{kind} name {entry.name!r} is registered twice")
            self._by_name[normalise_name(entry.name)] = entry
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
            valid = ", ".join([*self._listed, *self.names()])
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {valid}")
        return self._by_name[key]

    def names(self) -> list[str]:
        """The entries' names, in registration order (aliases not included)."""
        return [e.name for e in self._by_name.values()]

    def register(self, entry: E, *, replace: bool = False) -> E | None:
        """Add ``entry`` under its name; returns the entry it replaced (None for a new name).

        A name already registered raises ``ValueError`` unless ``replace=True``; a name that is an
        alias of another entry always raises (aliases are not replaced).

        Examples
        --------
        >>> from collections import namedtuple
        >>> Item = namedtuple("Item", "name description")
        >>> reg = Registry("item", [Item("top_k", "the best")], aliases={"best": "top_k"})
        >>> reg.register(Item("mine", "my own")) is None, reg.names()
        (True, ['top_k', 'mine'])
        >>> reg.register(Item("Mine", "again"))
        Traceback (most recent call last):
        ValueError: item 'Mine' is already registered; pass replace=True to replace it
        >>> reg.unregister("mine").description, "mine" in reg
        ('my own', False)
        """
        if not isinstance(entry.name, str) or not normalise_name(entry.name):
            raise ValueError(f"a {self.kind} needs a non-empty name, got {entry.name!r}")
        key = normalise_name(entry.name)
        if key in self._aliases:
            raise ValueError(f"{self.kind} name {entry.name!r} is an alias of {self._aliases[key]!r}; "
                             f"choose another name")
        previous = self._by_name.get(key)
        if previous is not None and not replace:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered; pass replace=True "
                             f"to replace it")
        self._by_name[key] = entry
        return previous

    def unregister(self, name: str) -> E:
        """Remove the entry registered as ``name`` (not an alias) and the aliases that point to it;
        returns it. An unknown name raises ``ValueError`` listing the valid ones."""
        key = normalise_name(name)
        if key not in self._by_name:
            raise ValueError(f"no {self.kind} {name!r} is registered; registered: {', '.join(self.names())}")
        for alias in [a for a, target in self._aliases.items() if target == key]:
            del self._aliases[alias]
        self._listed = tuple(a for a in self._listed if a in self._aliases)
        return self._by_name.pop(key)

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


_NAME = re.compile(r"[a-z][a-z0-9_]*")


def checked_name(name: str, kind: str) -> str:
    """``name`` normalised; ``ValueError`` unless it is letters, digits and underscores."""
    key = normalise_name(name) if isinstance(name, str) else ""
    if not _NAME.fullmatch(key):
        raise ValueError(f"a {kind} name is letters, digits and underscores starting with a letter "
                         f"(hyphens read as underscores), got {name!r}")
    return key


def parameters_of(fn: Callable[..., Any], what: str, *, signature: str | None = None
                  ) -> list[inspect.Parameter]:
    """The parameters of ``fn`` (``what`` names it in errors). With ``signature``, ``fn`` must be
    callable first: ``ValueError`` "<what> must be a function <signature>" otherwise."""
    if signature is not None and not callable(fn):
        raise ValueError(f"{what} must be a function {signature}, got {type(fn).__name__}")
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} has no readable signature ({err}); pass a Python function") from err


def entry_description(description: str | None, fn: Callable[..., Any], what: str) -> str:
    """``description``, else the first line of ``fn``'s docstring; ``ValueError`` when neither."""
    text = description if description is not None else (inspect.getdoc(fn) or "").strip().split("\n")[0]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: give description= (one line for listings) or a docstring")
    return text.strip()
