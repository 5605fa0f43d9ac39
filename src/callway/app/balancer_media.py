"""The balancer's ng client: one UDP socket to the media relay (``callway relay`` or rtpengine).

:meth:`MediaRelayClient.request` sends one ng command and calls back with
the reply dictionary, or with None when the relay did not answer: the
request is sent again under the same cookie after :data:`RETRY_AFTER`
seconds (the relay's cookie cache makes that safe), and given up after
:data:`GIVE_UP_AFTER`.  Given up, the balancer forwards the SIP message
unchanged (media then flows end to end, not through the relay), logs a
warning and counts ``media_relay_timeout``: a relay that is down degrades
media anchoring, never the calls themselves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from callway.balancer.media import NgCodec, NgCommand, NgReply, parse_relay_address

log = logging.getLogger("callway.balancer")

RETRY_AFTER = 0.5  # seconds before the one retransmission of a request
GIVE_UP_AFTER = 1.0  # seconds before the message continues without the relay

Done = Callable[[NgReply | None], None]


@dataclass(slots=True)
class _Pending:
    datagram: bytes
    done: Done
    command: str
    timer: asyncio.TimerHandle | None = None
    retried: bool = False


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: MediaRelayClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.client.on_reply(data)


class MediaRelayClient:
    """Asyncio shell around :class:`~callway.balancer.media.NgCodec`."""

    def __init__(self, address: str, stats: dict[str, int]) -> None:
        self.address = parse_relay_address(address)
        self.codec = NgCodec(f"cwb{os.getpid()}")  # again in start(): a forked worker's own
        self.stats = stats
        self.pending: dict[bytes, _Pending] = {}
        self.transport: asyncio.DatagramTransport | None = None
        for name in ("media_relay_requests", "media_relay_timeout", "media_relay_errors"):
            stats.setdefault(name, 0)

    async def start(self) -> None:
        """Open the control socket (connected: only the relay's datagrams come in)."""
        self.codec = NgCodec(f"cwb{os.getpid()}_{secrets.token_hex(3)}")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), remote_addr=self.address
        )
        self.transport = transport
        log.info("media relay: ng control to udp:%s:%d", *self.address)

    def close(self) -> None:
        """Close the socket; pending requests are answered None."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        pending, self.pending = self.pending, {}
        for item in pending.values():
            if item.timer is not None:
                item.timer.cancel()
            item.done(None)

    def request(self, command: NgCommand, done: Done) -> None:
        """Send ``command``; ``done`` gets the reply, or None after :data:`GIVE_UP_AFTER`."""
        self.stats["media_relay_requests"] += 1
        if self.transport is None:
            self._give_up(command.command, done)
            return
        cookie, datagram = self.codec.encode(command)
        item = _Pending(datagram, done, command.command)
        self.pending[cookie] = item
        self._send(cookie, item, RETRY_AFTER)

    def _send(self, cookie: bytes, item: _Pending, wait: float) -> None:
        if self.transport is not None:
            try:
                self.transport.sendto(item.datagram)
            except OSError as exc:
                log.debug("media relay send failed: %s", exc)
        loop = asyncio.get_running_loop()
        item.timer = loop.call_later(wait, self._expired, cookie)

    def _expired(self, cookie: bytes) -> None:
        item = self.pending.get(cookie)
        if item is None:
            return
        if not item.retried:
            item.retried = True
            self._send(cookie, item, GIVE_UP_AFTER - RETRY_AFTER)
            return
        del self.pending[cookie]
        self._give_up(item.command, item.done)

    def _give_up(self, command: str, done: Done) -> None:
        self.stats["media_relay_timeout"] += 1
        log.warning("media relay udp:%s:%d did not answer %s: forwarding unchanged",
                    *self.address, command)  # fmt: skip
        done(None)

    def on_reply(self, data: bytes) -> None:
        """A datagram from the relay: complete its request (a late duplicate is dropped)."""
        decoded = self.codec.decode(data)
        if decoded is None:
            return
        cookie, reply = decoded
        item = self.pending.pop(cookie, None)
        if item is None:
            return
        if item.timer is not None:
            item.timer.cancel()
        if reply.get("result") != b"ok":
            self.stats["media_relay_errors"] += 1
        item.done(reply)
