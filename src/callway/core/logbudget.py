"""A per-second budget for repetitive log lines (sans-I/O: the caller passes ``now``).

A registrar logs each new contact, as Asterisk does at verbose level 3.  That
is what an operator wants to see while a handful of phones come and go, but
under a registration storm one formatted and written line per REGISTER costs
more CPU than the registration itself and floods the log.  A budget lets the
first ``per_second`` lines of each second through and counts the others;
:meth:`LogBudget.take_suppressed` hands the count to a periodic summary line.
"""

from __future__ import annotations


class LogBudget:
    """At most ``per_second`` lines in each whole second of ``now``."""

    __slots__ = ("_second", "_used", "per_second", "suppressed")

    def __init__(self, per_second: int = 20) -> None:
        self.per_second = per_second
        #: Lines refused since the last :meth:`take_suppressed`.
        self.suppressed = 0
        self._second = -1
        self._used = 0

    def allow(self, now: float) -> bool:
        """Whether one more line may be logged at ``now`` (counted if not)."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._used = 0
        if self._used < self.per_second:
            self._used += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many lines were refused since the last call; resets the count."""
        count, self.suppressed = self.suppressed, 0
        return count
