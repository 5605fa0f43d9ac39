"""Server-side digest state, sans-I/O: nonces with replay tracking, failure bans.

Nothing here reads the clock: every method that needs time takes ``now`` (any
monotonic seconds the caller chooses). Nonces are stateless to verify (an HMAC
over their issue time, RFC 7616 §5.4 "nonce ... time-stamp H(time-stamp ...
secret)"); only the highest ``nc`` seen per nonce is remembered (RFC 7616 §3.3:
the server detects replays by tracking nonce-count values), in bounded memory.

When several nodes share ``secret``, pass wall-clock ``now`` on every node so a
nonce issued by one ages correctly on another.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import heapq
import hmac
import math
import re
import struct
from array import array
from collections import deque
from dataclasses import dataclass, field

__all__ = ["FailureTracker", "NonceManager", "NonceStatus"]

_STAMP = struct.Struct(">dQ")  # issue time, issue sequence number
_MAC_SIZE = hashlib.sha256().digest_size
_NONCE_BYTES = _STAMP.size + _MAC_SIZE  # 48 bytes -> 64 base64url characters, no padding
_NONCE_SHAPE = re.compile(r"[A-Za-z0-9_-]{64}")
_NC_SHAPE = re.compile(r"[0-9A-Fa-f]{8}")


class NonceStatus(enum.Enum):
    """What :meth:`NonceManager.check` found (RFC 7616 §3.3 ``stale``, §5.4 replays)."""

    VALID = "valid"
    STALE = "stale"  # ours, well formed, expired: answer 401 with stale=true
    INVALID = "invalid"  # not ours (forged, garbled, other secret)
    REPLAY = "replay"  # nc not above the highest seen for this nonce


class NonceManager:
    """Issues and checks nonces: ``base64url(time || seq || HMAC-SHA256(secret, time || seq))``.

    ``seq`` makes two nonces issued at the same ``now`` differ, so per-nonce
    ``nc`` tracking never mixes two clients. A nonce is fresh while
    ``0 <= now - issued < lifetime``. At most ``max_entries`` nonces have their
    ``nc`` remembered; when an unexpired one must be forgotten, every nonce issued
    at or before it is treated as STALE from then on (a new challenge, never a
    replay window).

    The nonces issued here are numbered in issue order and live equally long, so
    their highest ``nc`` is kept in two arrays indexed by ``seq`` (issue time,
    highest ``nc``; 12 bytes a nonce, no Python object), trimmed from the front
    as they expire: a registration peak leaves no small objects behind.  A nonce
    issued by another node with the same secret (or one issued here so long ago
    that it left the arrays) is remembered in a dict instead.
    """

    __slots__ = (
        "_counts",
        "_first_seq",
        "_floor",
        "_heap",
        "_highest_nc",
        "_issued",
        "_max_entries",
        "_remembered",
        "_secret",
        "_seq",
        "_start",
        "lifetime",
    )

    def __init__(self, secret: bytes, lifetime: float = 30.0, max_entries: int = 65536) -> None:
        if not secret:
            raise ValueError("NonceManager needs a non-empty secret")
        if lifetime <= 0 or max_entries <= 0:
            raise ValueError("lifetime and max_entries must be positive")
        self._secret = secret
        self.lifetime = lifetime
        self._max_entries = max_entries
        self._seq = 0
        # Nonces issued here, by seq - _first_seq (the live ones from _start on).
        self._issued = array("d")
        self._counts = array("I")  # highest nc seen (8 hex digits: 32 bits), 0 for none
        self._first_seq = 0
        self._start = 0
        self._remembered = 0  # nonzero entries of _counts from _start on
        # Other nonces (other nodes' or long gone from the arrays): nonce -> highest nc.
        self._highest_nc: dict[str, int] = {}
        self._heap: list[tuple[float, str]] = []  # (issued, nonce) for each of those
        self._floor = -math.inf

    def issue(self, now: float) -> str:
        """A fresh nonce stamped with ``now`` (RFC 7616 §3.3 ``nonce``)."""
        seq = self._seq
        stamp = _STAMP.pack(now, seq)
        self._seq = (seq + 1) & 0xFFFFFFFFFFFFFFFF
        if seq != self._first_seq + len(self._issued):
            self._restart_arrays(seq)  # the counter wrapped
        self._issued.append(now)
        self._counts.append(0)
        if len(self._issued) - self._start > 4 * self._max_entries:
            self._drop_oldest_issued()
        return base64.urlsafe_b64encode(stamp + self._mac(stamp)).decode("ascii")

    def _restart_arrays(self, seq: int) -> None:
        """Forget every array entry (their remembered nc raise the floor) and start at seq."""
        while len(self._issued) > self._start:
            self._drop_oldest_issued()
        self._issued, self._counts = array("d"), array("I")
        self._first_seq, self._start = seq, 0

    def _drop_oldest_issued(self) -> None:
        """Let the oldest issued nonce leave the arrays (a flood of challenges)."""
        index = self._start
        if self._counts[index]:
            self._counts[index] = 0
            self._remembered -= 1
            self._floor = max(self._floor, self._issued[index])
        self._start = index + 1
        self._compact()

    def _compact(self) -> None:
        start = self._start
        if start > 1024 and 2 * start > len(self._issued):
            del self._issued[:start]
            del self._counts[:start]
            self._first_seq += start
            self._start = 0

    def _slot(self, nonce: str) -> int:
        """The array index of one of our nonces still in the arrays, else -1."""
        raw = base64.urlsafe_b64decode(nonce)
        issued, seq = _STAMP.unpack_from(raw)
        index = seq - self._first_seq
        if self._start <= index < len(self._issued) and self._issued[index] == issued:
            return int(index)
        return -1

    def _highest(self, nonce: str) -> int:
        index = self._slot(nonce)
        return self._counts[index] if index >= 0 else self._highest_nc.get(nonce, 0)

    def _mac(self, stamp: bytes) -> bytes:
        return hmac.new(self._secret, stamp, hashlib.sha256).digest()

    def issued_at(self, nonce: str) -> float | None:
        """The issue time of one of our nonces, or None if it is not ours."""
        if _NONCE_SHAPE.fullmatch(nonce) is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except (binascii.Error, ValueError):
            return None
        stamp, mac = raw[: _STAMP.size], raw[_STAMP.size :]
        if len(raw) != _NONCE_BYTES or not hmac.compare_digest(mac, self._mac(stamp)):
            return None
        issued: float = _STAMP.unpack(stamp)[0]
        return issued

    def peek(self, nonce: str, nc: str | None, now: float) -> NonceStatus:
        """Like :meth:`check` but remembers nothing (use before the response is verified)."""
        issued = self.issued_at(nonce)
        if issued is None:
            return NonceStatus.INVALID
        if nc is not None and _NC_SHAPE.fullmatch(nc) is None:
            return NonceStatus.INVALID
        if not 0 <= now - issued < self.lifetime or issued <= self._floor:
            return NonceStatus.STALE
        if nc is not None and int(nc, 16) <= self._highest(nonce):
            return NonceStatus.REPLAY
        return NonceStatus.VALID

    def check(self, nonce: str, nc: str | None, now: float) -> NonceStatus:
        """Check ``nonce`` and, when VALID with an ``nc``, record ``nc`` as its highest.

        ``nc`` is the 8-hex-digit ``nonce-count`` (RFC 7616 §3.4), None when the
        client sent no qop: the nonce then stays usable until it expires.
        """
        status = self.peek(nonce, nc, now)
        if status is NonceStatus.VALID and nc is not None:
            self._remember(nonce, int(nc, 16), now)
        return status

    def _remember(self, nonce: str, count: int, now: float) -> None:
        index = self._slot(nonce)
        if index >= 0:
            if not self._counts[index]:
                self._prune(now)
                index = self._slot(nonce)  # pruning may have moved the arrays
                if index < 0:  # it was the oldest of a full memory: now stale
                    return
                self._remembered += 1
            self._counts[index] = min(count, 0xFFFFFFFF)
            return
        if nonce not in self._highest_nc:
            self._prune(now)
            issued = self.issued_at(nonce)
            assert issued is not None  # peek() accepted it
            heapq.heappush(self._heap, (issued, nonce))
        self._highest_nc[nonce] = count

    def expire(self, now: float) -> int:
        """Forget the nonces expired at ``now``; how many (call it from a periodic timer).

        :meth:`check` prunes too, but only when a new nonce is remembered: after a
        burst of registrations this frees the burst's nonces once they are stale.
        """
        heap, highest = self._heap, self._highest_nc
        expired = 0
        while heap and now - heap[0][0] >= self.lifetime:
            del highest[heapq.heappop(heap)[1]]
            expired += 1
        if expired and not highest:  # a dict keeps its largest table: start small again
            self._highest_nc = {}
        issued, counts, lifetime = self._issued, self._counts, self.lifetime
        index, end = self._start, len(issued)
        while index < end and now - issued[index] >= lifetime:
            if counts[index]:
                expired += 1
                self._remembered -= 1
            index += 1
        self._start = index
        self._compact()
        return expired

    def _prune(self, now: float) -> None:
        """Forget expired nonces; if still full, forget the oldest and raise the floor."""
        self.expire(now)
        while len(self) >= self._max_entries:
            oldest_here = self._oldest_remembered()
            if self._heap and (oldest_here < 0 or self._heap[0][0] <= self._issued[oldest_here]):
                issued, nonce = heapq.heappop(self._heap)
                del self._highest_nc[nonce]
            else:
                issued = self._issued[oldest_here]
                self._counts[oldest_here] = 0
                self._remembered -= 1
            self._floor = max(self._floor, issued)

    def _oldest_remembered(self) -> int:
        counts = self._counts
        for index in range(self._start, len(counts)):
            if counts[index]:
                return index
        return -1

    def __len__(self) -> int:
        """How many nonces have their ``nc`` remembered."""
        return len(self._highest_nc) + self._remembered


@dataclass(slots=True)
class _Failures:
    times: deque[float]
    banned_until: float = -math.inf
    last: float = field(default=-math.inf)


class FailureTracker:
    """Counts authentication failures per key (e.g. source IP or username).

    After ``max_failures`` failures within ``window`` seconds the key is blocked
    for ``ban`` seconds (answer 403 instead of a new 401, as Asterisk with
    fail2ban does). Failures while blocked extend the ban. At most ``max_keys``
    keys are remembered; the least recently failing key is forgotten first.
    """

    __slots__ = ("_keys", "ban", "max_failures", "max_keys", "window")

    def __init__(
        self,
        max_failures: int = 3,
        window: float = 60.0,
        ban: float = 300.0,
        max_keys: int = 65536,
    ) -> None:
        if max_failures <= 0 or max_keys <= 0 or window <= 0 or ban < 0:
            raise ValueError("FailureTracker limits must be positive")
        self.max_failures = max_failures
        self.window = window
        self.ban = ban
        self.max_keys = max_keys
        self._keys: dict[str, _Failures] = {}

    def record_failure(self, key: str, now: float) -> int:
        """Record one failure at ``now``; return the failures for ``key`` within the window."""
        record = self._keys.pop(key, None)
        if record is None:
            self._make_room(now)
            record = _Failures(deque(maxlen=self.max_failures))
        self._keys[key] = record  # most recently failing keys last
        record.times.append(now)
        record.last = now
        count = sum(1 for t in record.times if now - t < self.window)
        if count >= self.max_failures:
            record.banned_until = now + self.ban
        return count

    def is_blocked(self, key: str, now: float) -> bool:
        """True while ``key`` is banned (``now`` before the ban ends)."""
        record = self._keys.get(key)
        return record is not None and now < record.banned_until

    def record_success(self, key: str) -> None:
        """Forget every failure of ``key`` (and lift its ban)."""
        self._keys.pop(key, None)

    def _expired(self, record: _Failures, now: float) -> bool:
        return now - record.last >= self.window and now >= record.banned_until

    def _make_room(self, now: float) -> None:
        """Drop expired keys from the front; if still full, drop the oldest."""
        while self._keys:
            oldest = next(iter(self._keys))
            if not self._expired(self._keys[oldest], now) and len(self._keys) < self.max_keys:
                return
            del self._keys[oldest]

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._keys)
