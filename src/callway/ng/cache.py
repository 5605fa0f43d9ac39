"""The cookie cache: a retransmitted ng request gets the first reply again.

An ng client waits a while for the reply to a request, then sends the same
datagram again under the same cookie (Kamailio's rtpengine module:
``rtpengine_tout_ms``, ``rtpengine_retr``).  Carrying out an ``offer`` twice
would allocate ports twice, so the server keeps each reply by its cookie
for ``ttl`` seconds, as rtpengine does, and answers a repeated cookie from
the cache without executing anything.

Sans-I/O: the caller passes the time (``now``, any monotonic clock in
seconds).  The cache is bounded: past ``max_entries`` the oldest entries go
first, whatever their age.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_TTL", "ReplyCache"]

DEFAULT_TTL = 30.0
DEFAULT_MAX_ENTRIES = 10000


class ReplyCache:
    """Replies by cookie, forgotten after ``ttl`` seconds or when the cache is full."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("the cookie cache needs ttl > 0 and max_entries >= 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, cookie: bytes, now: float) -> bytes | None:
        """The reply cached for ``cookie``, or None (unknown or expired)."""
        self._expire(now)
        entry = self._entries.get(cookie)
        if entry is None:
            return None
        self.hits += 1
        return entry[1]

    def put(self, cookie: bytes, reply: bytes, now: float) -> None:
        """Remember ``reply`` as the answer to ``cookie`` from ``now`` on."""
        self._expire(now)
        self._entries.pop(cookie, None)
        self._entries[cookie] = (now, reply)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            cookie, (stored, _reply) = next(iter(entries.items()))
            if now - stored < self.ttl:
                return
            del entries[cookie]
