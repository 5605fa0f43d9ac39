"""callway.core.timers.TimerHeap (lives here until tests/unit/core exists)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callway.core.timers import TimerHeap


def test_empty_heap_has_no_deadline() -> None:
    heap: TimerHeap[str] = TimerHeap()
    assert heap.next_deadline() is None
    assert heap.pop_due(1e9) == []
    assert len(heap) == 0


def test_pop_due_returns_keys_in_deadline_order() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.schedule(3.0, "c")
    heap.schedule(1.0, "a")
    heap.schedule(2.0, "b")
    assert heap.next_deadline() == 1.0
    assert heap.pop_due(2.0) == ["a", "b"]
    assert heap.next_deadline() == 3.0
    assert "c" in heap and "a" not in heap


def test_equal_deadlines_fire_in_scheduling_order() -> None:
    heap: TimerHeap[int] = TimerHeap()
    for key in (5, 3, 9):
        heap.schedule(1.0, key)
    assert heap.pop_due(1.0) == [5, 3, 9]


def test_schedule_again_moves_the_key() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.schedule(1.0, "a")
    heap.schedule(5.0, "a")
    assert len(heap) == 1
    assert heap.deadline("a") == 5.0
    assert heap.next_deadline() == 5.0
    assert heap.pop_due(4.0) == []
    assert heap.pop_due(5.0) == ["a"]


def test_cancel() -> None:
    heap: TimerHeap[str] = TimerHeap()
    heap.schedule(1.0, "a")
    heap.schedule(2.0, "b")
    assert heap.cancel("a") is True
    assert heap.cancel("a") is False
    assert heap.deadline("a") is None
    assert heap.next_deadline() == 2.0
    assert heap.pop_due(10.0) == ["b"]


def test_stale_entries_are_compacted() -> None:
    heap: TimerHeap[int] = TimerHeap()
    for round_ in range(50):
        for key in range(10):
            heap.schedule(float(round_ + key), key)
    assert len(heap) == 10
    assert len(heap._heap) <= max(64, 2 * len(heap)) + 1


@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 100), st.booleans()), max_size=60))
def test_heap_agrees_with_a_dict(ops: list[tuple[int, float, bool]]) -> None:
    heap: TimerHeap[int] = TimerHeap()
    model: dict[int, float] = {}
    for key, deadline, cancel in ops:
        if cancel:
            assert heap.cancel(key) == (key in model)
            model.pop(key, None)
        else:
            heap.schedule(deadline, key)
            model[key] = deadline
        assert heap.next_deadline() == (min(model.values()) if model else None)
    due = heap.pop_due(50.0)
    assert sorted(due) == sorted(k for k, d in model.items() if d <= 50.0)
    assert [model[k] for k in due] == sorted(model[k] for k in due)
    assert len(heap) == sum(1 for d in model.values() if d > 50.0)
