"""Symmetric RTP latching rules, driven by a hand-stepped clock."""

from __future__ import annotations

from callway.rtp.latch import Latch

SIGNALLED = ("192.0.2.10", 4000)
NAT = ("203.0.113.7", 61000)
STRAY = ("198.51.100.66", 5555)


def latch(**kwargs: object) -> Latch:
    result = Latch(window=2.0, timeout=3.0, **kwargs)  # type: ignore[arg-type]
    result.reset(SIGNALLED, now=100.0)
    return result


def test_signalled_source_latches() -> None:
    state = latch()
    assert state.remote == SIGNALLED and not state.latched
    assert state.accept(SIGNALLED, 100.1)
    assert state.latched
    assert not state.accept(STRAY, 100.2)
    assert state.remote == SIGNALLED


def test_nat_source_latches_within_window() -> None:
    state = latch()
    assert state.accept(NAT, 101.0)
    assert (state.remote, state.latched) == (NAT, True)
    assert not state.accept(STRAY, 101.5)  # no hijack once latched
    assert not state.accept(SIGNALLED, 101.6)


def test_after_window_new_source_waits_for_signalled_silence() -> None:
    state = latch()
    assert not state.accept(NAT, 102.5)  # window over, signalled silent only 2.5 s
    assert state.accept(NAT, 103.0)  # silent for the 3 s latch timeout
    assert state.remote == NAT


def test_symmetric_latches_to_first_source_any_time() -> None:
    state = latch(symmetric=True)
    assert state.accept(NAT, 102.5)
    assert not state.accept(STRAY, 102.6)


def test_latched_source_silent_for_timeout_can_be_replaced() -> None:
    state = latch()
    assert state.accept(SIGNALLED, 100.0)
    state.last_heard = 110.0  # the relay stores the last accepted packet time
    assert not state.accept(NAT, 112.9)
    assert state.accept(NAT, 113.0)
    assert state.remote == NAT


def test_relatch_learns_again() -> None:
    state = latch()
    assert state.accept(SIGNALLED, 100.0)
    state.relatch(now=200.0)
    assert (state.remote, state.latched) == (SIGNALLED, False)
    assert state.accept(NAT, 200.5)
    assert state.remote == NAT


def test_nothing_signalled_takes_first_source() -> None:
    state = Latch()
    state.reset(None, now=0.0)
    assert state.accept(NAT, 50.0)
    assert state.remote == NAT
