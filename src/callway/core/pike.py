"""Per-source flood detection, in the spirit of Kamailio's pike module (sans-I/O).

Each source address has a counter over a sliding window made of two fixed
buckets (the previous one weighted by how much of it still overlaps the
window).  A source above ``limit`` requests per ``window`` seconds is banned
for ``ban`` seconds: its packets are dropped without an answer, so a flood
costs us one dict lookup per packet.  Memory is bounded: idle sources are
forgotten, and at most ``max_sources`` are tracked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Counter:
    bucket_start: float
    current: int = 0
    previous: int = 0
    banned_until: float = 0.0


class Pike:
    """Counts requests per source; ``allow`` says whether to serve one."""

    def __init__(
        self,
        limit: int = 200,
        window: float = 2.0,
        ban: float = 300.0,
        *,
        max_sources: int = 100_000,
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        if limit <= 0 or window <= 0 or ban < 0:
            raise ValueError("pike limits must be positive")
        self.limit = limit
        self.window = window
        self.ban = ban
        self.max_sources = max_sources
        self.exempt = exempt
        self._sources: dict[str, _Counter] = {}
        self.bans = 0
        self.dropped = 0

    def allow(self, source: str, now: float) -> bool:
        """Count one request from ``source``; False means drop it (banned or flooding)."""
        if source in self.exempt:
            return True
        counter = self._sources.get(source)
        if counter is None:
            if len(self._sources) >= self.max_sources:
                self._prune(now)
            counter = self._sources[source] = _Counter(now)
        if counter.banned_until > now:
            self.dropped += 1
            return False
        elapsed = now - counter.bucket_start
        if elapsed >= self.window:
            counter.previous = counter.current if elapsed < 2 * self.window else 0
            counter.current = 0
            buckets = int(elapsed / self.window)
            counter.bucket_start += buckets * self.window  # buckets stay aligned
            elapsed -= buckets * self.window
        counter.current += 1
        overlap = 1.0 - elapsed / self.window
        rate = counter.current + counter.previous * overlap
        if rate > self.limit:
            counter.banned_until = now + self.ban
            self.bans += 1
            self.dropped += 1
            return False
        return True

    def is_banned(self, source: str, now: float) -> bool:
        """True while ``source`` is banned."""
        counter = self._sources.get(source)
        return counter is not None and counter.banned_until > now

    def banned(self, now: float) -> list[str]:
        """Sources banned now (for the console and the admin API)."""
        return [s for s, c in self._sources.items() if c.banned_until > now]

    def unban(self, source: str) -> bool:
        """Lift a ban (operator action)."""
        counter = self._sources.pop(source, None)
        return counter is not None and counter.banned_until > 0

    def _prune(self, now: float) -> None:
        """Forget idle, unbanned sources; if still full, the oldest ones."""
        idle = [
            s
            for s, c in self._sources.items()
            if c.banned_until <= now and now - c.bucket_start >= 2 * self.window
        ]
        for source in idle:
            del self._sources[source]
        if len(self._sources) >= self.max_sources:
            oldest = sorted(self._sources.items(), key=lambda item: item[1].bucket_start)
            for source, _counter in oldest[: len(oldest) // 10 + 1]:
                del self._sources[source]

    def __len__(self) -> int:
        return len(self._sources)
