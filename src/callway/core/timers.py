"""A deadline heap for sans-I/O protocol cores.

A protocol object keeps one :class:`TimerHeap` for all its timers and reports
``next_deadline()`` through its ``get_timer()``; the shell wakes it with
``handle_timer(now)``, which calls :meth:`TimerHeap.pop_due` (the aioquic
pattern, see DESIGN.md principle 1).  The heap never reads the clock.

Keys are any hashable value and each key has at most one deadline: scheduling
a key again moves it.  Cancelled and moved entries stay in the heap as stale
records and are skipped; the heap is rebuilt when stale records outnumber the
live ones, so memory stays proportional to the live timers.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_COMPACT_MIN = 64


class TimerHeap(Generic[K]):
    """Deadlines keyed by ``K``, earliest first."""

    __slots__ = ("_counter", "_heap", "_live")

    def __init__(self) -> None:
        # (deadline, sequence, key); the sequence breaks ties in scheduling
        # order and keeps keys out of comparisons.
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, int] = {}
        self._counter = itertools.count()

    def schedule(self, deadline: float, key: K) -> None:
        """Set ``key`` to fire at ``deadline``, replacing any earlier deadline."""
        sequence = next(self._counter)
        self._live[key] = sequence
        heapq.heappush(self._heap, (deadline, sequence, key))
        self._maybe_compact()

    def cancel(self, key: K) -> bool:
        """Forget ``key``; return whether it was scheduled."""
        found = self._live.pop(key, None) is not None
        self._maybe_compact()
        return found

    def deadline(self, key: K) -> float | None:
        """When ``key`` fires, or None if it is not scheduled (O(n); for tests and logs)."""
        sequence = self._live.get(key)
        if sequence is None:
            return None
        for when, seq, _ in self._heap:
            if seq == sequence:
                return when
        return None  # pragma: no cover - _live and _heap always agree

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None when nothing is scheduled."""
        self._drop_stale_top()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        """Remove and return the keys whose deadline is ``<= now``, earliest first."""
        due: list[K] = []
        while True:
            self._drop_stale_top()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            due.append(key)

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def _is_live(self, sequence: int, key: K) -> bool:
        return self._live.get(key) == sequence

    def _drop_stale_top(self) -> None:
        heap = self._heap
        while heap and not self._is_live(heap[0][1], heap[0][2]):
            heapq.heappop(heap)

    def _maybe_compact(self) -> None:
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * len(self._live):
            self._heap = [e for e in self._heap if self._is_live(e[1], e[2])]
            heapq.heapify(self._heap)
