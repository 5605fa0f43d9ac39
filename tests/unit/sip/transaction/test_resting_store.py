"""RestingStore: the many-record, no-small-object store of finished transactions."""

from __future__ import annotations

import random

import pytest

from callway.sip.transaction.resting import RestingStore


def test_add_get_pop_and_expiry_in_order() -> None:
    store = RestingStore(32.0)
    store.add(hash(b"a"), b"a", b"payload-a", now=0.0)
    store.add(hash(b"b"), b"b", b"payload-b", now=1.0)
    assert len(store) == 2
    assert store.get(hash(b"a"), b"a") == b"payload-a"
    assert store.get(hash(b"c"), b"c") is None
    assert store.next_deadline == 32.0
    assert store.expire(31.9) == 0
    assert store.expire(32.0) == 1
    assert store.get(hash(b"a"), b"a") is None
    assert store.next_deadline == 33.0
    assert store.pop(hash(b"b"), b"b") == b"payload-b"
    assert store.pop(hash(b"b"), b"b") is None
    assert len(store) == 0 and store.next_deadline is None
    assert store.mapped_bytes == 0  # the last map is given back


def test_equal_hashes_are_told_apart_by_the_key_bytes() -> None:
    store = RestingStore(1.0)
    for index in range(50):
        store.add(7, f"k{index}".encode(), f"v{index}".encode(), now=0.0)
    assert [store.get(7, f"k{i}".encode()) for i in range(50)] == [
        f"v{i}".encode() for i in range(50)
    ]
    assert store.get(7, b"k50") is None


def test_adding_a_stored_key_replaces_it() -> None:
    store = RestingStore(10.0)
    store.add(1, b"k", b"old", now=0.0)
    store.add(1, b"k", b"new", now=5.0)
    assert len(store) == 1 and store.get(1, b"k") == b"new"
    assert store.next_deadline == 15.0  # the replaced record was skipped
    assert store.expire(10.0) == 0
    assert store.expire(15.0) == 1


def test_a_record_larger_than_a_map_gets_a_map_of_its_own() -> None:
    store = RestingStore(1.0)
    big = bytes(range(256)) * 8192  # 2 MiB
    store.add(1, b"big", big, now=0.0)
    store.add(2, b"small", b"x", now=0.0)
    assert store.get(1, b"big") == big and store.get(2, b"small") == b"x"
    assert store.expire(1.0) == 2 and store.mapped_bytes == 0


def test_a_peak_is_given_back_maps_and_table() -> None:
    store = RestingStore(32.0)
    payload = b"x" * 400
    for index in range(20_000):
        store.add(hash(str(index)), str(index).encode(), payload, now=index / 1000)
    assert store.mapped_bytes >= 20_000 * 400 and store.table_slots >= 40_000
    assert store.expire(100.0) == 20_000
    assert store.mapped_bytes == 0 and store.table_slots == 1024


@pytest.mark.parametrize("seed", range(8))
def test_against_a_dict_with_colliding_hashes(seed: int) -> None:
    """Random adds, pops and expiries agree with a dict model (probing, shifts, resizes)."""
    rng = random.Random(seed)
    store = RestingStore(5.0)
    model: dict[bytes, tuple[bytes, float]] = {}
    now = 0.0
    for _ in range(4000):
        key = str(rng.randrange(300)).encode()
        key_hash = int(key) % 13 - 6  # few, negative too: long probe runs
        action = rng.random()
        if action < 0.5:
            payload = rng.randbytes(rng.randrange(0, 300))
            store.add(key_hash, key, payload, now)
            model[key] = (payload, now + 5.0)
        elif action < 0.7:
            expected = model.pop(key, None)
            assert store.pop(key_hash, key) == (expected[0] if expected else None)
        elif action < 0.8:
            now += rng.random()
            due = [k for k, (_, deadline) in model.items() if deadline <= now]
            for k in due:
                del model[k]
            assert store.expire(now) == len(due)
        else:
            expected = model.get(key)
            assert store.get(key_hash, key) == (expected[0] if expected else None)
        assert len(store) == len(model)
        deadline = store.next_deadline
        if model:
            assert deadline is not None and deadline <= min(d for _, d in model.values())
        else:
            assert deadline is None
