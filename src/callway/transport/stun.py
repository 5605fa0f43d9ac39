"""asyncio shell of the STUN server: the sockets around :class:`StunResponder`.

RFC 5780 §4.1: with two IPs and two ports the server listens on IP1:P1,
IP1:P2, IP2:P1 and IP2:P2, so a CHANGE-REQUEST answer can leave from the
other IP and/or port.  With one IP and two ports it needs two sockets and
can change only the port.  UDP only (RFC 5780 behaviour discovery is a UDP
affair; STUN over TCP is left out).

:func:`answer_stun_on` is for the SIP and RTP shells: STUN that arrives on
their ports (RFC 5626 §8.1 keepalives, RFC 7983 demultiplexing) gets its
Binding response from the same socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import cast

from callway.stun.server import HostPort, StunResponder, binding_response

log = logging.getLogger("callway.stun")


def answer_stun_on(data: bytes, source: tuple[object, ...]) -> bytes | None:
    """The Binding response for STUN ``data`` received from ``source`` on a shared port.

    ``None`` when ``data`` is not a STUN Binding request (so the caller
    handles it as SIP or RTP).  ``source`` may be a 2-tuple or an IPv6
    4-tuple as the socket returns it.
    """
    host, port = source[0], source[1]
    if not isinstance(host, str) or not isinstance(port, int):
        return None
    return binding_response(data, (host, port))


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, server: StunServer, local: HostPort) -> None:
        self.server = server
        self.local = local
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = addr[0], addr[1]
        if isinstance(host, str) and isinstance(port, int):
            self.server.received(data, (host, port), self.local)

    def error_received(self, exc: Exception) -> None:  # ICMP errors: nothing to do
        log.debug("stun %s:%s: %s", self.local[0], self.local[1], exc)


class StunServer:
    """UDP sockets on every address/port combination, feeding one responder.

    A port of 0 picks a free one (P1 on IP1 first, then the same port on IP2).
    """

    def __init__(self, primary: HostPort, alternate: HostPort | None = None) -> None:
        self.requested = (primary, alternate)
        self.responder: StunResponder | None = None
        self._endpoints: dict[HostPort, _Endpoint] = {}

    @property
    def addresses(self) -> list[HostPort]:
        """The bound local addresses."""
        return list(self._endpoints)

    async def start(self) -> None:
        """Bind the sockets; the responder is built from the ports actually bound."""
        primary, alternate = self.requested
        try:
            p1 = await self._bind(primary)
            if alternate is None:
                self.responder = StunResponder(p1)
                return
            ip2, port2 = alternate
            if port2 == 0:
                port2 = (await self._bind((p1[0], 0)))[1]  # IP1:P2, P2 picked by the kernel
            self.responder = StunResponder(p1, (ip2, port2))
            for local in self.responder.local_addresses:
                if local not in self._endpoints:
                    await self._bind(local)
        except BaseException:
            self.close()
            raise

    async def _bind(self, local: HostPort) -> HostPort:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(local)
        except OSError:
            sock.close()
            raise
        bound: HostPort = (local[0], sock.getsockname()[1])
        endpoint = _Endpoint(self, bound)
        await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
        self._endpoints[bound] = endpoint
        return bound

    def received(self, data: bytes, source: HostPort, local: HostPort) -> None:
        """Feed one datagram to the responder and send what it answers."""
        if self.responder is None:
            return
        for reply in self.responder.handle(data, source, local):
            endpoint = self._endpoints.get(reply.local)
            if endpoint is None or endpoint.transport is None:
                log.warning("stun: no socket on %s:%s to answer from", *reply.local)
                continue
            endpoint.transport.sendto(reply.data, reply.remote)

    def close(self) -> None:
        """Close every socket."""
        for endpoint in self._endpoints.values():
            if endpoint.transport is not None:
                with contextlib.suppress(Exception):
                    endpoint.transport.close()
        self._endpoints.clear()

    async def __aenter__(self) -> StunServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
