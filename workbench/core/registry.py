"""One name → object registry per concept (tasks, teachers, methods, students, job kinds).

A registry is filled two ways, and both are the same to its users:

* in process, with :meth:`Registry.register` (a decorator): a notebook's own teacher, a test's throw-away method;
* by packaging metadata, an entry point in the registry's group, loaded on first use. The workbench's own
  backends register this way too (see ``[project.entry-points]`` in ``pyproject.toml``), exactly as a third-party
  package would, so a lower stage never imports a higher one to learn what exists.

>>> methods = Registry("method")
>>> @methods.register("plain")
... class Plain: ...
>>> methods["plain"].__name__, "plain" in methods, methods.names()
('Plain', True, ['plain'])
>>> methods["nope"]
Traceback (most recent call last):
...
workbench.core.errors.UnknownNameError: unknown method 'nope'; known: plain
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from workbench.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to objects for one concept; ``group`` names the entry-point group it also reads (lazily)."""

    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._pending: dict[str, EntryPoint] | None = None

    def register(self, name_or_obj=None, obj: T | None = None):
        """``@registry.register("name")``, ``@registry.register`` (the name is the object's ``name`` or ``kind``
        attribute) or ``registry.register("name", obj)``. A later registration under a name replaces the earlier."""

        def add(item: T, name: str | None = None) -> T:
            key = name or getattr(item, "name", None) or getattr(item, "kind", None)
            if not key:
                raise ValueError(f"a {self.kind} needs a name to be registered")
            self._items[key] = item
            return item

        if isinstance(name_or_obj, str) or name_or_obj is None:
            if obj is not None:
                return add(obj, name_or_obj)
            return lambda item: add(item, name_or_obj)
        return add(name_or_obj)

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)
        if self._pending is not None:
            self._pending.pop(name, None)

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._pending is None:
            self._pending = {} if self.group is None else {ep.name: ep for ep in entry_points(group=self.group)}
        return self._pending

    def __getitem__(self, name: str) -> T:
        if name not in self._items:
            ep = self._entry_points().get(name)
            if ep is None:
                raise UnknownNameError(self.kind, name, self.names())
            self._items[name] = ep.load()
        return self._items[name]

    def get(self, name: str, default: T | None = None) -> T | None:
        return self[name] if name in self else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self._entry_points())

    def names(self) -> list[str]:
        """Every registered name (entry points included, without importing them), sorted."""
        return sorted(set(self._items) | set(self._entry_points()))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs, loading every entry point."""
        return [(n, self[n]) for n in self.names()]
