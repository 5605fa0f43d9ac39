"""UdpEndpoint's greedy reader: every waiting datagram in one wakeup, with the queue's lag.

Real sockets on 127.0.0.1; the reader is called the way the event loop
calls it (``_on_readable``) after the datagrams are queued.
"""

from __future__ import annotations

import socket
import time

import pytest

from callway.core.address import Address
from callway.transport import udp
from callway.transport.udp import BATCH, UdpEndpoint


def _queue(endpoint: UdpEndpoint, count: int, host: str = "127.0.0.1") -> socket.socket:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    # Linux turns receive timestamps on a moment after the first socket asks
    # (deferred static key): a datagram queued before then is stamped when read.
    time.sleep(0.02)
    for index in range(count):
        sender.sendto(b"datagram %d" % index, (host, endpoint.port))
    time.sleep(0.05)  # queued 50 ms before the reader runs: a lag to measure
    return sender


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
def test_greedy_reads_every_waiting_datagram_and_measures_lag(bind: str) -> None:
    got: list[tuple[bytes, Address]] = []
    endpoint = UdpEndpoint(bind, 0, lambda data, src: got.append((data, src)), greedy=True)
    sender = _queue(endpoint, 3)
    try:
        endpoint._on_readable()
        assert [data for data, _ in got] == [b"datagram 0", b"datagram 1", b"datagram 2"]
        source = got[0][1]
        assert source.port == sender.getsockname()[1]
        assert source.local == ("127.0.0.1", endpoint.port)  # wildcard: from IP_PKTINFO
        assert all(src is source for _, src in got)  # one memoised Address per peer
        assert 0.04 <= endpoint.lag < 5.0  # the first (oldest) datagram's wait
        endpoint._on_readable()  # nothing waiting: returns at once
        assert len(got) == 3
    finally:
        sender.close()
        endpoint.close()


def test_wildcard_greedy_reports_each_datagrams_destination() -> None:
    got: list[Address] = []
    endpoint = UdpEndpoint("0.0.0.0", 0, lambda _data, src: got.append(src), greedy=True)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b"a", ("127.0.0.1", endpoint.port))
        sender.sendto(b"b", ("127.0.0.2", endpoint.port))
        time.sleep(0.05)
        endpoint._on_readable()
        assert [src.local for src in got] == [
            ("127.0.0.1", endpoint.port),
            ("127.0.0.2", endpoint.port),
        ]
    finally:
        sender.close()
        endpoint.close()


def test_greedy_stops_at_a_batch() -> None:
    got: list[bytes] = []
    endpoint = UdpEndpoint("127.0.0.1", 0, lambda data, _src: got.append(data), greedy=True)
    sender = _queue(endpoint, BATCH + 5)
    try:
        endpoint._on_readable()
        assert len(got) == BATCH  # the loop gets a turn; the rest is read next wakeup
        endpoint._on_readable()
        assert len(got) == BATCH + 5
    finally:
        sender.close()
        endpoint.close()


def test_not_greedy_reads_one_when_there_is_no_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp, "queue_wait", lambda _timespec: 0.0)  # read the moment it came
    got: list[bytes] = []
    endpoint = UdpEndpoint("127.0.0.1", 0, lambda data, _src: got.append(data))
    sender = _queue(endpoint, 2)
    try:
        endpoint._on_readable()
        assert got == [b"datagram 0"]  # no second read: it would only fail, as a rule
        endpoint._on_readable()
        assert got == [b"datagram 0", b"datagram 1"]
    finally:
        sender.close()
        endpoint.close()


def test_not_greedy_drains_a_backlog() -> None:
    got: list[bytes] = []
    endpoint = UdpEndpoint("127.0.0.1", 0, lambda data, _src: got.append(data))
    sender = _queue(endpoint, 3)  # the first waited 50 ms: the queue is behind
    try:
        endpoint._on_readable()
        assert len(got) == 3
    finally:
        sender.close()
        endpoint.close()


def test_greedy_survives_a_receiver_that_raises() -> None:
    got: list[bytes] = []

    def receiver(data: bytes, _src: Address) -> None:
        got.append(data)
        if data == b"datagram 0":
            raise ValueError("bad packet")

    endpoint = UdpEndpoint("127.0.0.1", 0, receiver, greedy=True)
    sender = _queue(endpoint, 2)
    try:
        endpoint._on_readable()
        assert got == [b"datagram 0", b"datagram 1"]
    finally:
        sender.close()
        endpoint.close()
