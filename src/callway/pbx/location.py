"""The location service: address-of-record -> contact bindings (RFC 3261 §10.3).

Sans-I/O: every method takes ``now``; expiry is enforced by
:meth:`Location.expire` driven from ``get_timer()``.  Changes are written
through a :class:`LocationStore` so registrations survive a restart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Protocol

from callway.core.address import Address


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an AOR (RFC 3261 §10.3 step 7)."""

    aor: str
    uri: str
    expires_at: float
    call_id: str
    cseq: int
    source: Address
    registered_at: float
    path: tuple[str, ...] = ()
    user_agent: str = ""
    instance: str = ""
    reg_id: str = ""
    params: str = ""

    def remaining(self, now: float) -> int:
        """Whole seconds left, never negative."""
        return max(0, int(self.expires_at - now + 0.5))


_BINDING_FIELDS = tuple(f.name for f in fields(Binding))


def _registered_at(binding: Binding) -> float:
    return binding.registered_at


def _registered_since(binding: Binding, registered_at: float) -> Binding:
    """``dataclasses.replace(binding, registered_at=...)`` at half the cost (a refresh)."""
    new = object.__new__(Binding)
    for name in _BINDING_FIELDS:
        object.__setattr__(new, name, getattr(binding, name))
    object.__setattr__(new, "registered_at", registered_at)
    return new


class LocationStore(Protocol):
    """Persistence of bindings (embedded SQLite by default)."""

    def save(self, binding: Binding) -> None:
        """Insert or replace a binding (key: aor + uri)."""

    def delete(self, aor: str, uri: str) -> None:
        """Remove a binding."""

    def load(self) -> Iterable[Binding]:
        """Every stored binding."""


class MemoryStore:
    """A store that keeps nothing: for tests and throw-away nodes."""

    def save(self, binding: Binding) -> None:
        """Nothing is kept."""

    def delete(self, aor: str, uri: str) -> None:
        """Nothing is kept."""

    def load(self) -> Iterable[Binding]:
        """Nothing was kept."""
        return ()


class Location:
    """Bindings by AOR, with expiry and write-through persistence."""

    def __init__(self, store: LocationStore | None = None) -> None:
        self._store: LocationStore = store or MemoryStore()
        self._bindings: dict[str, dict[str, Binding]] = {}
        #: No binding expires before this (a lower bound: a refresh or a removal
        #: leaves it behind).  Until then :meth:`expire` and :meth:`count` need
        #: no pass over every binding (they run a few times a second).
        self._earliest = math.inf

    def restore(self, now: float) -> int:
        """Load stored bindings that have not expired; return how many."""
        count = 0
        for binding in self._store.load():
            if binding.expires_at > now:
                self._bindings.setdefault(binding.aor, {})[binding.uri] = binding
                self._earliest = min(self._earliest, binding.expires_at)
                count += 1
            else:
                self._store.delete(binding.aor, binding.uri)
        return count

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of ``aor``, oldest registration first."""
        found = self._bindings.get(aor)
        if not found:
            return []
        if len(found) == 1:  # the usual case (max_contacts=1): nothing to sort
            [binding] = found.values()
            return [binding] if binding.expires_at > now else []
        return sorted((b for b in found.values() if b.expires_at > now), key=_registered_at)

    def get(self, aor: str, uri: str) -> Binding | None:
        """The binding of ``uri`` under ``aor``."""
        return self._bindings.get(aor, {}).get(uri)

    def bindings_of(self, aor: str) -> dict[str, Binding] | None:
        """The bindings of ``aor`` by URI, expired ones included (read only), or None."""
        return self._bindings.get(aor)

    def put(self, binding: Binding) -> None:
        """Add or refresh a binding."""
        found = self._bindings.get(binding.aor)
        if found is None:
            found = self._bindings[binding.aor] = {}
        old = found.get(binding.uri)
        if old is not None and old.registered_at != binding.registered_at:
            binding = _registered_since(binding, old.registered_at)
        found[binding.uri] = binding
        if binding.expires_at < self._earliest:
            self._earliest = binding.expires_at
        self._store.save(binding)

    def remove(self, aor: str, uri: str) -> None:
        """Remove one binding."""
        found = self._bindings.get(aor)
        if found and found.pop(uri, None) is not None:
            if not found:
                del self._bindings[aor]
            self._store.delete(aor, uri)

    def remove_all(self, aor: str) -> None:
        """Remove every binding of ``aor`` (``Contact: *``)."""
        for uri in list(self._bindings.get(aor, {})):
            self.remove(aor, uri)

    def count(self, now: float) -> int:
        """How many bindings are live (what :meth:`all` would list, without building it)."""
        if now < self._earliest:
            return sum(map(len, self._bindings.values()))  # all of them
        return sum(
            1 for found in self._bindings.values() for b in found.values() if b.expires_at > now
        )

    def all(self, now: float) -> list[Binding]:
        """Every live binding."""
        return [b for aor in sorted(self._bindings) for b in self.lookup(aor, now)]

    def get_timer(self) -> float | None:
        """When the next binding expires."""
        deadlines = [b.expires_at for found in self._bindings.values() for b in found.values()]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[Binding]:
        """Drop bindings whose time has come; return them."""
        gone = self._due(now)
        for binding in gone:
            self.remove(binding.aor, binding.uri)
        return gone

    def _due(self, now: float) -> list[Binding]:
        """The bindings expired at ``now`` (none before :attr:`_earliest`); renews the bound."""
        if now < self._earliest:
            return []
        gone = []
        earliest = math.inf
        for found in self._bindings.values():
            for binding in found.values():
                if binding.expires_at <= now:
                    gone.append(binding)
                elif binding.expires_at < earliest:
                    earliest = binding.expires_at
        self._earliest = earliest
        return gone

    def _note(self, binding: Binding) -> None:
        """Hold :attr:`_earliest` below a binding written without :meth:`put`."""
        if binding.expires_at < self._earliest:
            self._earliest = binding.expires_at
