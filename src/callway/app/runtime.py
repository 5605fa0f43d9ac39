"""Process-wide runtime settings of a long-running callway node.

The SIP hot path allocates many short-lived objects (parsed headers, URIs,
transactions) while the configuration (thousands of endpoints) stays alive
for the life of the process.  CPython's default collector thresholds
(700, 10, 10) make it rescan those long-lived objects over and over: in the
REGISTER benchmark garbage collection took a quarter of the CPU and its
pauses caused retransmissions.
"""

from __future__ import annotations

import gc

#: Generation thresholds for a server process: young collections every 50000
#: net allocations instead of 700; full collections only rarely.
GC_THRESHOLDS = (50_000, 20, 1_000)


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
