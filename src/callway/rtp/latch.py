"""Symmetric RTP latching: whom to send a leg's media to, and whom to believe.

A phone behind NAT signals its private address in SDP but its packets arrive
from the NAT's public mapping.  Symmetric RTP (RFC 4961: send from the port
you receive on) lets the relay answer to where packets really come from,
like Asterisk's ``rtp_symmetric``/``strictrtp`` learning.  The rules:

* The destination starts as the address signalled in SDP (``reset``).
* While not latched, a packet from another source latches to it when
  ``symmetric`` is set, within ``window`` seconds of the last reset, or when
  the signalled address has been silent for ``timeout`` seconds.
* Once latched, a packet from another source is refused (a stray sender can
  not hijack the flow) unless the latched source has been silent for
  ``timeout`` seconds.  A re-INVITE calls ``reset`` to learn again.

The caller checks ``source != latch.remote or not latch.latched`` before
calling :meth:`Latch.accept`, so a latched flow costs one comparison per
packet; it stores the time of the last accepted packet in ``last_heard``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Latch", "SocketAddress"]

SocketAddress = tuple[Any, ...]
"""``(host, port)``, or on IPv6 ``(host, port, flowinfo, scope_id)`` as sockets report it."""


class Latch:
    """Latching state for one receive socket (RTP or RTCP of one leg)."""

    __slots__ = (
        "last_heard",
        "latched",
        "learn_until",
        "remote",
        "signalled",
        "symmetric",
        "timeout",
        "window",
    )

    def __init__(
        self, *, symmetric: bool = False, window: float = 2.0, timeout: float = 3.0
    ) -> None:
        self.symmetric = symmetric
        self.window = window
        self.timeout = timeout
        self.signalled: SocketAddress | None = None
        self.remote: SocketAddress | None = None
        self.latched = False
        self.learn_until = 0.0
        self.last_heard = 0.0

    def reset(self, signalled: SocketAddress | None, now: float) -> None:
        """Take a new signalled address and learn again (call setup, re-INVITE)."""
        self.signalled = signalled
        self.remote = signalled
        self.latched = False
        self.learn_until = now + self.window
        self.last_heard = now

    def relatch(self, now: float) -> None:
        """Learn again, keeping the signalled address."""
        self.reset(self.signalled, now)

    def accept(self, source: SocketAddress, now: float) -> bool:
        """Decide on a packet from ``source``; True latches to it and forwards it."""
        if source == self.remote:
            self.latched = True
        elif not self._may_move(now):
            return False
        else:
            self.remote = source
            self.latched = True
        self.last_heard = now
        return True

    def _may_move(self, now: float) -> bool:
        if now - self.last_heard >= self.timeout or self.remote is None:
            return True
        return not self.latched and (self.symmetric or now < self.learn_until)
