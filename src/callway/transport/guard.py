"""What a node on the open internet drops before even parsing a message.

* requests from a source that floods (:class:`~callway.core.pike.Pike`) are
  dropped silently while it is banned (responses are never counted: they
  belong to our own transactions);
* with ``drop_scanners``, requests whose User-Agent is a known scanner's
  (``friendly-scanner``, SIPVicious...) are dropped without an answer, so
  the scanner learns nothing.

Each drop is counted; the first drop of a ban is logged with the source.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable

from callway.core.address import Address
from callway.core.pike import Pike

log = logging.getLogger("callway.security")

_UA_NAMES = (b"\r\nuser-agent:", b"\r\nUser-Agent:", b"\r\nUSER-AGENT:")


class Guard:
    """Pike + scanner filter for one SIP stack."""

    def __init__(
        self,
        *,
        pike: Pike | None,
        trusted: tuple[str, ...] = (),
        scanner_agents: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pike = pike
        self.trusted = tuple(ipaddress.ip_network(t, strict=False) for t in trusted)
        self.scanner_agents = tuple(a.lower().encode() for a in scanner_agents)
        self.clock = clock
        self.scanners_dropped = 0
        self._trusted_cache: dict[str, bool] = {}

    def _is_trusted(self, host: str) -> bool:
        known = self._trusted_cache.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host)
                known = any(address in net for net in self.trusted)
            except ValueError:
                known = False
            if len(self._trusted_cache) < 10_000:
                self._trusted_cache[host] = known
        return known

    def admit(self, data: bytes, source: Address) -> bool:
        """False: drop the message unanswered."""
        if data.startswith(b"SIP/"):
            return True  # a response to one of our requests
        if self.scanner_agents and self._scanner(data):
            self.scanners_dropped += 1
            if self.scanners_dropped == 1 or self.scanners_dropped % 1000 == 0:
                log.warning("dropping scanner requests (%d so far), latest from %s",
                            self.scanners_dropped, source.host)  # fmt: skip
            return False
        pike = self.pike
        if pike is None or (self.trusted and self._is_trusted(source.host)):
            return True
        now = self.clock()
        was_banned = pike.is_banned(source.host, now)
        if pike.allow(source.host, now):
            return True
        if not was_banned:
            log.warning("pike: %s floods (> %d requests in %.0f s): banned for %.0f s",
                        source.host, pike.limit, pike.window, pike.ban)  # fmt: skip
        return False

    def _scanner(self, data: bytes) -> bool:
        head = data[:2048]
        for name in _UA_NAMES:
            start = head.find(name)
            if start >= 0:
                end = head.find(b"\r\n", start + 2)
                value = head[start + len(name) : end if end > 0 else None].lower()
                return any(agent in value for agent in self.scanner_agents)
        return False


def build_guard(
    pike_limit: int,
    pike_window: float,
    pike_ban: float,
    trusted: tuple[str, ...],
    drop_scanners: bool,
    scanner_agents: tuple[str, ...],
) -> Guard | None:
    """A guard from ``[security]`` settings, or None when everything is off."""
    if pike_limit <= 0 and not drop_scanners:
        return None
    pike = Pike(pike_limit, pike_window, pike_ban) if pike_limit > 0 else None
    agents = scanner_agents if drop_scanners else ()
    return Guard(pike=pike, trusted=trusted, scanner_agents=agents)
