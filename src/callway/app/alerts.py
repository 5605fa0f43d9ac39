"""Alert webhooks: a JSON POST when a node goes down or comes back.

The body is signed with HMAC-SHA256 over the exact bytes (header
``X-Callway-Signature: sha256=<hex>``) so the receiver can trust it; each
alert is tried a few times with a short timeout and then dropped with a log
line (alerts must never slow down call handling).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp

log = logging.getLogger("callway.alerts")

ATTEMPTS = 3
TIMEOUT = 2.0


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def alert_body(event: object) -> dict[str, Any]:
    """The JSON object for a prober event (DestinationUp / DestinationDown)."""
    kind = type(event).__name__
    return {
        "event": "node_down" if "Down" in kind else "node_up",
        "uri": getattr(event, "uri", ""),
        "setid": getattr(event, "setid", None),
        "reason": str(getattr(event, "cause", "")),
        "time": time.time(),
    }


class AlertSender:
    """Posts alerts to ``url`` (does nothing when it is empty)."""

    def __init__(self, url: str, secret: str = "") -> None:
        self.url = url
        self.secret = secret
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def send(self, event: object) -> None:
        """Queue one alert."""
        if not self.url:
            return
        task = asyncio.get_running_loop().create_task(self._post(alert_body(event)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "callway"}
        if self.secret:
            headers["X-Callway-Signature"] = sign(self.secret, body)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        for attempt in range(ATTEMPTS):
            try:
                async with self._session.post(self.url, data=body, headers=headers) as reply:
                    if reply.status < 300:
                        self.sent += 1
                        return
                    log.warning("alert webhook answered %d", reply.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("alert webhook failed (attempt %d): %s", attempt + 1, exc)
            await asyncio.sleep(0.5 * (attempt + 1))
        self.failed += 1

    async def close(self) -> None:
        """Finish pending alerts (briefly) and close the HTTP session."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 3)
        if self._session is not None:
            await self._session.close()
