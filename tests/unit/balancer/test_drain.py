"""The balancer's UDP reader: every waiting datagram in one wakeup, with the queue's lag."""

from __future__ import annotations

import socket
import time

from callway.app.balancer import drain_udp
from callway.core.address import Address
from callway.transport.udp import UdpEndpoint


def test_drain_reads_every_waiting_datagram_and_measures_lag() -> None:
    got: list[tuple[bytes, Address]] = []
    endpoint = UdpEndpoint("127.0.0.1", 0, lambda data, source: got.append((data, source)))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for index in range(3):
            sender.sendto(b"datagram %d" % index, ("127.0.0.1", endpoint.port))
        time.sleep(0.05)
        drain_udp(endpoint)
        assert [data for data, _ in got] == [b"datagram 0", b"datagram 1", b"datagram 2"]
        source = got[0][1]
        assert source.port == sender.getsockname()[1]
        assert source.local == ("127.0.0.1", endpoint.port)
        assert 0.04 <= endpoint.lag < 5.0
        drain_udp(endpoint)  # nothing waiting: returns at once
        assert len(got) == 3
    finally:
        sender.close()
        endpoint.close()
