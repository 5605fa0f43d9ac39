"""Pike-style flood detection with a hand-stepped clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callway.core.pike import Pike
from tests.helpers.clock import ManualClock


def test_under_the_limit_is_served() -> None:
    clock = ManualClock()
    pike = Pike(limit=10, window=1.0, ban=60)
    for _ in range(100):
        assert pike.allow("192.0.2.1", clock.now)
        clock.advance(0.2)  # 5 per second


def test_flood_is_banned_then_released() -> None:
    clock = ManualClock()
    pike = Pike(limit=10, window=1.0, ban=60)
    results = [pike.allow("192.0.2.1", clock.now) for _ in range(30)]
    assert results[:10] == [True] * 10
    assert not any(results[11:])
    assert pike.is_banned("192.0.2.1", clock.now)
    assert pike.allow("192.0.2.2", clock.now)  # others are served
    clock.advance(59)
    assert not pike.allow("192.0.2.1", clock.now)
    clock.advance(2)
    assert pike.allow("192.0.2.1", clock.now)
    assert pike.bans == 1 and pike.dropped >= 20


def test_sliding_window_counts_previous_bucket() -> None:
    clock = ManualClock()
    pike = Pike(limit=10, window=1.0, ban=60)
    for _ in range(9):
        assert pike.allow("a", clock.now)
    clock.advance(1.1)  # a new bucket, but 90% of the old one still overlaps: 8.1
    assert pike.allow("a", clock.now)  # 9.1
    assert not pike.allow("a", clock.now)  # 10.1 > 10


def test_exempt_and_unban() -> None:
    clock = ManualClock()
    pike = Pike(limit=1, window=1.0, ban=60, exempt=frozenset({"10.0.0.1"}))
    assert all(pike.allow("10.0.0.1", clock.now) for _ in range(100))
    pike.allow("x", clock.now)
    pike.allow("x", clock.now)
    assert pike.banned(clock.now) == ["x"]
    assert pike.unban("x")
    assert pike.allow("x", clock.now)


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=300))
def test_memory_is_bounded(sources: list[int]) -> None:
    clock = ManualClock()
    pike = Pike(limit=5, window=1.0, ban=10, max_sources=20)
    for source in sources:
        pike.allow(f"s{source}", clock.now)
        clock.advance(0.01)
    assert len(pike) <= 21
