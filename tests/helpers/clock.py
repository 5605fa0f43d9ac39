"""A hand-stepped clock for sans-I/O tests."""

from __future__ import annotations


class ManualClock:
    """Time that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def advance(self, seconds: float) -> float:
        """Move forward and return the new time."""
        self.now += seconds
        return self.now
