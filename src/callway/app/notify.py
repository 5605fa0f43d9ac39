"""Push notifications for the callback scheme: wake an offline app user.

The PBX does not talk to APNs/FCM/SMS itself: it posts a JSON webhook to the
business back end, which forwards it (the seed's "notified through the
business channel").  The body is signed with HMAC-SHA256 over its exact bytes
(``X-Callway-Signature: sha256=<hex>``, with ``X-Callway-Timestamp`` inside
the signed string to stop replays); each notification is retried a few times
with a short timeout.  :class:`Notifier` is the interface; the webhook is the
default implementation.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

import aiohttp

log = logging.getLogger("callway.notify")


@dataclass(frozen=True, slots=True)
class CallbackNotice:
    """What the back end needs to wake the callee (RFC 8599 push parameters included)."""

    call_id: str
    caller: str
    callee: str
    mode: str  # "hold" or "conference"
    room: str | None
    expires_at: float
    push: dict[str, str] = field(default_factory=dict)
    event: str = "incoming_call"
    room_number: str | None = None  # dial it to join the room (conference mode)


class Notifier(Protocol):
    """Sends callback notices."""

    async def notify(self, notice: CallbackNotice) -> bool:
        """True once the back end accepted the notice."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=HMAC(secret, timestamp + "." + body)``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookNotifier:
    """POSTs notices as JSON to ``url``."""

    def __init__(self, url: str, secret: str = "", *, attempts: int = 3, timeout: float = 2.0
                 ) -> None:  # fmt: skip
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.timeout = timeout
        self.sent = 0
        self.failed = 0

    async def notify(self, notice: CallbackNotice) -> bool:
        """Post with retries; never raises."""
        if not self.url:
            log.warning("callback for %s: no webhook configured", notice.callee)
            return False
        body = json.dumps(asdict(notice), sort_keys=True).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Callway-Timestamp": stamp}
        if self.secret:
            headers["X-Callway-Signature"] = signature(self.secret, stamp, body)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(1, self.attempts + 1):
                try:
                    async with session.post(self.url, data=body, headers=headers) as reply:
                        if reply.status < 300:
                            self.sent += 1
                            log.info("callback notice for %s delivered (%d)", notice.callee,
                                     reply.status)  # fmt: skip
                            return True
                        log.warning("callback webhook answered %d (attempt %d)", reply.status,
                                    attempt)  # fmt: skip
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("callback webhook failed (attempt %d): %s", attempt, exc)
                if attempt < self.attempts:
                    await asyncio.sleep(0.3 * attempt)
        self.failed += 1
        return False
