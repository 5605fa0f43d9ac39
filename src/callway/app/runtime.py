"""Process-wide runtime settings of a long-running callway node.

The SIP hot path allocates many short-lived objects (parsed headers, URIs,
transactions) while the configuration (thousands of endpoints) stays alive
for the life of the process.  CPython's default collector thresholds
(700, 10, 10) make it rescan those long-lived objects over and over: in the
REGISTER benchmark garbage collection took a quarter of the CPU and its
pauses caused retransmissions.

After a burst the freed memory of the malloc heap stays with the process
(glibc only gives back the top of the heap); :class:`MemoryTrimmer` hands
the free pages back to the system once a load is over.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
import tracemalloc

#: Generation thresholds for a server process: young collections every 50000
#: net allocations instead of 700; full collections only rarely.
GC_THRESHOLDS = (50_000, 20, 1_000)

#: Seconds between the full collections a node's periodic sweep makes: with
#: the thresholds above the collector itself would leave cyclic garbage in
#: the oldest generation for hours.
FULL_COLLECTION_INTERVAL = 60.0

#: Free heap bytes worth a ``malloc_trim``: below this nothing is done.
TRIM_MIN_FREE = 8 * 1024 * 1024

#: Free heap bytes worth a ``malloc_trim`` once the heap has settled (idle).
TRIM_MIN_SETTLED = 1024 * 1024


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Call once the configuration is loaded, before serving.

    Collects what start-up left behind, moves every surviving object to the
    permanent generation (:func:`gc.freeze`: the collector never scans the
    loaded configuration again) and raises the collection thresholds.
    Reference counting still frees acyclic garbage at once; only cycles wait
    longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


class FullCollector:
    """A full collection every ``interval`` seconds, from a node's periodic sweep.

    Reference counting frees acyclic garbage at once; this bounds how long
    a cycle (a call whose objects refer to each other) outlives its use.
    Its pause is that of one pass over the unfrozen heap (milliseconds for
    hundreds of thousands of objects), once a minute.
    """

    def __init__(self, interval: float = FULL_COLLECTION_INTERVAL) -> None:
        self.interval = interval
        self.collections = 0
        self._due: float | None = None

    def maybe_collect(self, now: float) -> int | None:
        """Collect when due; the number of unreachable objects found, else None."""
        if self._due is None:
            self._due = now + self.interval
        if now < self._due:
            return None
        self._due = now + self.interval
        self.collections += 1
        return gc.collect()


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _load_glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc with ``malloc_trim`` and ``mallinfo2``, else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim, info = libc.malloc_trim, libc.mallinfo2
    except (OSError, AttributeError):  # musl, macOS, an older glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    info.argtypes, info.restype = [], _MallInfo2
    return libc


class MemoryTrimmer:
    """Gives the malloc heap's free pages back to the system after a large release.

    Call :meth:`maybe_trim` from a periodic sweep of the asyncio shell (every
    few seconds).  It follows how much of glibc's heap is free
    (``mallinfo2().fordblks``) and calls ``malloc_trim(0)``, which releases
    every whole free page, not only the top of the heap:

    - once that has grown by ``min_free`` bytes over its lowest point since
      the last trim (a burst of calls or registrations has ended and its
      memory came back);
    - or once the heap has settled (free bytes unchanged within
      ``SETTLED_SLACK`` since the previous call: the node is idle) with at
      least ``min_settled`` bytes freed since the last trim.  State kept for
      RFC 3261's timers expires over 32 s after a burst: without this, the
      last few MB freed after a trim would stay with the process.

    Elsewhere than on glibc it does nothing.
    """

    #: Change in free heap bytes between two calls that still counts as settled.
    SETTLED_SLACK = 64 * 1024

    def __init__(self, min_free: int = TRIM_MIN_FREE, min_settled: int = TRIM_MIN_SETTLED) -> None:
        self.min_free = min_free
        self.min_settled = min_settled
        self.trims = 0
        self._libc = _load_glibc()
        self._low = self._last = self.free_bytes()

    @property
    def available(self) -> bool:
        """True on glibc."""
        return self._libc is not None

    def free_bytes(self) -> int:
        """Free bytes inside the malloc heap (0 where unknown)."""
        if self._libc is None:
            return 0
        info: _MallInfo2 = self._libc.mallinfo2()
        return int(info.fordblks)

    def maybe_trim(self) -> bool:
        """Trim after a large release or once settled after a smaller one; True if so."""
        if self._libc is None:
            return False
        free = self.free_bytes()
        self._low = min(self._low, free)
        grown = free - self._low
        settled = abs(free - self._last) <= self.SETTLED_SLACK
        self._last = free
        if grown < self.min_free and not (settled and grown >= self.min_settled):
            return False
        self._libc.malloc_trim(0)
        self.trims += 1
        self._low = self._last = self.free_bytes()
        return True


def _short(obj: object) -> str:
    """A short repr of ``obj`` for a log line."""
    try:
        text = repr(obj)
    except Exception:  # a half-built object
        text = object.__repr__(obj)
    return text if len(text) <= 120 else text[:117] + "..."


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``); 0 where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class MemoryProbe:
    """What the process's memory consists of: the SIGUSR2 report (leak hunting).

    Each :meth:`report` gives the resident set (``VmRSS``), the live Python
    blocks (:func:`sys.getallocatedblocks`), glibc's heap (``mallinfo2``:
    in use, free, mmapped) and, when :mod:`tracemalloc` is tracing (start
    the node with ``PYTHONTRACEMALLOC=1``), the traced bytes and the
    allocation sites that grew most since the previous report.  With
    ``pymalloc`` set, :func:`sys._debugmallocstats` (pymalloc's arenas and
    size classes) is written to stderr as well.
    """

    def __init__(self, top: int = 25) -> None:
        self.top = top
        self._libc = _load_glibc()
        self._snapshot: tracemalloc.Snapshot | None = None
        self._bins: set[int] | None = None

    def summary(self) -> str:
        """One line: RSS, Python blocks, malloc heap, traced bytes."""
        parts = [
            f"rss={_status_kib('VmRSS')}kB",
            f"hwm={_status_kib('VmHWM')}kB",
            f"py_blocks={sys.getallocatedblocks()}",
        ]
        if self._libc is not None:
            info: _MallInfo2 = self._libc.mallinfo2()
            parts += [
                f"heap={info.arena // 1024}kB",
                f"heap_used={info.uordblks // 1024}kB",
                f"heap_free={info.fordblks // 1024}kB",
                f"mmapped={info.hblkhd // 1024}kB",
            ]
        if tracemalloc.is_tracing():
            current, peak = tracemalloc.get_traced_memory()
            parts += [f"traced={current // 1024}kB", f"traced_peak={peak // 1024}kB"]
        return " ".join(parts)

    def growth(self) -> list[str]:
        """Allocation sites that grew most since the last call (empty unless tracing)."""
        if not tracemalloc.is_tracing():
            return []
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        previous, self._snapshot = self._snapshot, snapshot
        if previous is None:
            return [f"top {stat}" for stat in snapshot.statistics("lineno")[: self.top]]
        return [f"grew {diff}" for diff in snapshot.compare_to(previous, "lineno")[: self.top]]

    def census(self) -> list[str]:
        """Live objects lying in memory the first census did not use, by type.

        Walks every object the collector tracks (those frozen at start up
        too: they are unfrozen for the walk) and the untracked objects they
        hold (strings, bytes, numbers, and the contents of containers of
        those), and bins them by MiB of address.  The first
        call remembers the bins in use; later calls list, by type, the live
        objects in other bins: the objects that keep the memory of a burst
        (pymalloc arenas of 1 MiB, malloc pages) from being given back.
        Enabled by ``CALLWAY_MEMORY_CENSUS=1`` (a pass over the heap: seconds).
        """
        if not os.environ.get("CALLWAY_MEMORY_CENSUS"):
            return []
        gc.collect()
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        try:
            tracked = gc.get_objects()
        finally:
            if frozen:
                gc.freeze()
        seen: dict[int, object] = {}
        for obj in tracked:
            seen[id(obj)] = obj
            stack = [ref for ref in gc.get_referents(obj) if not gc.is_tracked(ref)]
            while stack:  # untracked objects and what they hold (a str-keyed dict's keys)
                ref = stack.pop()
                if id(ref) not in seen:
                    seen[id(ref)] = ref
                    stack.extend(r for r in gc.get_referents(ref) if not gc.is_tracked(r))
        bins = {address >> 20 for address in seen}
        if self._bins is None:
            self._bins = bins
            return [f"census: {len(seen)} objects in {len(bins)} MiB"]
        new = {address: obj for address, obj in seen.items() if address >> 20 not in self._bins}
        by_type: dict[str, list[object]] = {}
        for obj in new.values():
            by_type.setdefault(type(obj).__qualname__, []).append(obj)
        lines = [
            f"census: {len(seen)} objects in {len(bins)} MiB; "
            f"{len(new)} in {len({a >> 20 for a in new})} MiB unused at the first census"
        ]
        ranked = sorted(by_type.items(), key=lambda item: -len(item[1]))[: self.top]
        for name, objs in ranked:
            lines.append(f"census: {len(objs)} {name} e.g. {_short(objs[0])}")
        return lines

    def report(self) -> list[str]:
        """The summary, the growth by site and the census; pymalloc's statistics on stderr.

        Ends with a ``malloc_trim(0)`` and what it gave back (the RSS is read first).
        """
        lines = [self.summary(), *self.growth(), *self.census()]
        if self._libc is not None:
            before = _status_kib("VmRSS")
            self._libc.malloc_trim(0)
            lines.append(f"malloc_trim(0): rss {before}kB -> {_status_kib('VmRSS')}kB")
        debug_stats = getattr(sys, "_debugmallocstats", None)
        if debug_stats is not None:
            debug_stats()
        return lines
