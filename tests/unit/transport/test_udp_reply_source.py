"""Replies leave from the address the request arrived on (RFC 3261 §18.2.2).

A socket bound to 0.0.0.0 must answer a datagram sent to 127.0.0.2 from
127.0.0.2, or the client drops the reply.
"""

from __future__ import annotations

import asyncio
import socket

from callway.core.address import Address
from callway.transport.udp import UdpEndpoint


def test_wildcard_socket_replies_from_arrival_address() -> None:
    async def scenario() -> tuple[bytes, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        endpoint: UdpEndpoint

        def echo(data: bytes, source: Address) -> None:
            endpoint.send(b"re:" + data, source)

        endpoint = UdpEndpoint("0.0.0.0", 0, echo)
        endpoint.start(loop)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        try:
            client.sendto(b"ping", ("127.0.0.2", endpoint.port))
            data, peer = await asyncio.wait_for(loop.sock_recvfrom(client, 100), 2.0)
            return data, peer
        finally:
            client.close()
            endpoint.close()

    data, peer = asyncio.run(scenario())
    assert data == b"re:ping"
    assert peer[0] == "127.0.0.2"


def test_specific_bind_reports_local_address() -> None:
    async def scenario() -> Address:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[Address] = loop.create_future()
        endpoint = UdpEndpoint("127.0.0.1", 0, lambda _d, src: seen.set_result(src))
        endpoint.start(loop)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            client.sendto(b"x", ("127.0.0.1", endpoint.port))
            return await asyncio.wait_for(seen, 2.0)
        finally:
            client.close()
            endpoint.close()

    source = asyncio.run(scenario())
    assert source.local is not None and source.local[0] == "127.0.0.1"
    assert source.transport == "udp"
