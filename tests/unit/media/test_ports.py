"""The RTP port pool: even/odd pairs, range bounds, reuse order, no leaks."""

from __future__ import annotations

import random
import socket

import pytest

from callway.media.ports import PortPool, PortsExhaustedError

HOST = "127.0.0.1"


def block(size: int) -> tuple[int, int]:
    start = random.randrange(40000, 60000 - size, 2)
    return start, start + size - 1


def test_pairs_are_even_odd_and_bound() -> None:
    start, end = block(20)
    pool = PortPool(HOST, start, end)
    pair = pool.allocate()
    try:
        assert pair.rtp_port % 2 == 0 and start <= pair.rtp_port < end
        assert pair.rtcp_port == pair.rtp_port + 1
        assert pair.rtp.getsockname() == (HOST, pair.rtp_port)
        assert pair.rtcp.getsockname() == (HOST, pair.rtcp_port)
        assert not pair.rtp.getblocking()
    finally:
        pair.close()
    assert pair.closed and pool.in_use == 0


def test_odd_start_rounds_up_and_capacity() -> None:
    pool = PortPool(HOST, 10001, 10010)
    assert pool.start == 10002
    assert pool.capacity == 4  # 10002, 10004, 10006, 10008 (+1 each)
    assert PortPool(HOST).capacity == 5000  # Asterisk's default 10000-20000
    with pytest.raises(ValueError, match="no even/odd pair"):
        PortPool(HOST, 10000, 10000)


def test_exhaustion_and_release() -> None:
    start, end = block(6)
    pool = PortPool(HOST, start, end)
    pairs = [pool.allocate() for _ in range(pool.capacity)]
    assert len({p.rtp_port for p in pairs}) == 3
    with pytest.raises(PortsExhaustedError):
        pool.allocate()
    pool.release(pairs[1])
    pool.release(pairs[1])  # idempotent
    again = pool.allocate()
    assert again.rtp_port == pairs[1].rtp_port
    for pair in (*pairs, again):
        pair.close()
    assert pool.in_use == 0


def test_round_robin_reuses_released_port_last() -> None:
    start, end = block(10)
    pool = PortPool(HOST, start, end)
    first = pool.allocate()
    first.close()
    second = pool.allocate()
    assert second.rtp_port == first.rtp_port + 2
    second.close()


def test_ports_held_elsewhere_are_skipped() -> None:
    start, end = block(10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind((HOST, start + 1))  # someone holds the first pair's RTCP port
        pool = PortPool(HOST, start, end)
        pair = pool.allocate()
        assert pair.rtp_port == start + 2
        pair.close()


def test_thousands_of_allocations_never_leak() -> None:
    start, end = block(200)
    pool = PortPool(HOST, start, end)
    live = []
    for round_ in range(3000):
        live.append(pool.allocate())
        if len(live) > 40 or round_ % 3 == 0:
            live.pop(random.randrange(len(live))).close()
    for pair in live:
        pair.close()
    assert pool.in_use == 0
    # Every pair of the range can still be taken at once: nothing stayed bound.
    everything = [pool.allocate() for _ in range(pool.capacity)]
    assert len({p.rtp_port for p in everything}) == pool.capacity
    for pair in everything:
        pair.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closed_pairs_stay_bound_and_are_reused_after_quarantine() -> None:
    start, end = block(20)
    clock = FakeClock()
    pool = PortPool(HOST, start, end, keep_idle=4, quarantine=2.0, clock=clock)
    first = pool.allocate()
    rtp_socket = first.rtp
    first.close()
    first.close()  # idempotent
    assert first.closed and pool.in_use == 0 and pool.idle == 1
    assert rtp_socket.fileno() >= 0  # kept bound, idle
    # A straggler of the ended call arrives while the pair is idle.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as late:
        late.sendto(b"late RTP", (HOST, first.rtp_port))
        late.sendto(b"late RTCP", (HOST, first.rtcp_port))
    second = pool.allocate()  # still quarantined: the cursor binds the next pair
    assert second.rtp_port == first.rtp_port + 2
    clock.now += 2.0
    third = pool.allocate()
    assert third.rtp_port == first.rtp_port and third.rtp is rtp_socket
    assert not third.closed and pool.in_use == 2 and pool.idle == 0
    with pytest.raises(BlockingIOError):  # the straggler was drained
        third.rtp.recv(100)
    with pytest.raises(BlockingIOError):
        third.rtcp.recv(100)
    second.close()
    third.close()
    assert pool.in_use == 0 and pool.idle == 2
    pool.close_idle()
    assert pool.idle == 0 and rtp_socket.fileno() < 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, first.rtp_port))  # unbound again


def test_pairs_idle_past_the_timeout_are_unbound() -> None:
    start, end = block(20)
    clock = FakeClock()
    pool = PortPool(HOST, start, end, keep_idle=4, idle_timeout=30.0, clock=clock)
    first, second = pool.allocate(), pool.allocate()
    first.close()
    clock.now += 10.0
    second.close()
    assert pool.expire_idle() == 0 and pool.idle == 2
    clock.now += 20.0  # first idle for 30 s, second for 20 s
    assert pool.expire_idle() == 1 and pool.idle == 1
    assert first.rtp.fileno() < 0 and first.rtcp.fileno() < 0
    assert second.rtp.fileno() >= 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, first.rtp_port))  # unbound again
    clock.now += 10.0
    assert pool.expire_idle() == 1 and pool.idle == 0
    assert pool.expire_idle() == 0
    again = pool.allocate()  # the pool still serves
    again.close()
    pool.close_idle()


def test_idle_pairs_are_capped() -> None:
    start, end = block(20)
    pool = PortPool(HOST, start, end, keep_idle=1)
    one, two = pool.allocate(), pool.allocate()
    one.close()
    two.close()
    assert pool.idle == 1 and one.rtp.fileno() >= 0 and two.rtp.fileno() < 0
    pool.close_idle()


def test_keep_idle_zero_unbinds_at_once() -> None:
    start, end = block(10)
    pool = PortPool(HOST, start, end, keep_idle=0)
    pair = pool.allocate()
    pair.close()
    assert pool.idle == 0 and pair.rtp.fileno() < 0
