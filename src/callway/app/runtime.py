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

#: Generation thresholds for a server process: young collections every 50000
#: net allocations instead of 700; full collections only rarely.
GC_THRESHOLDS = (50_000, 20, 1_000)

#: Seconds between the full collections a node's periodic sweep makes: with
#: the thresholds above the collector itself would leave cyclic garbage in
#: the oldest generation for hours.
FULL_COLLECTION_INTERVAL = 60.0

#: Free heap bytes worth a ``malloc_trim``: below this nothing is done.
TRIM_MIN_FREE = 8 * 1024 * 1024


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
    (``mallinfo2().fordblks``) and, once that has grown by ``min_free`` bytes
    over its lowest point since the last trim (a burst of calls or
    registrations has ended and its memory came back), calls
    ``malloc_trim(0)``, which releases every whole free page, not only the
    top of the heap.  Elsewhere than on glibc it does nothing.
    """

    def __init__(self, min_free: int = TRIM_MIN_FREE) -> None:
        self.min_free = min_free
        self.trims = 0
        self._libc = _load_glibc()
        self._low = self.free_bytes()

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
        """Trim when ``min_free`` more bytes are free than at the low point; True if so."""
        if self._libc is None:
            return False
        free = self.free_bytes()
        self._low = min(self._low, free)
        if free - self._low < self.min_free:
            return False
        self._libc.malloc_trim(0)
        self.trims += 1
        self._low = self.free_bytes()
        return True
