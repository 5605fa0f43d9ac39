"""Location.count: the live bindings all() would list, without building the list."""

from __future__ import annotations

from callway.core.address import Address
from callway.pbx.location import Binding, Location

SOURCE = Address("udp", "192.0.2.10", 5060)


def test_count_matches_all_and_skips_expired() -> None:
    location = Location()
    for index, expires_at in enumerate((100.0, 200.0, 300.0)):
        location.put(Binding("a" if index < 2 else "b", f"sip:x{index}@h", expires_at, "c", 1,
                             SOURCE, 0.0))  # fmt: skip
    assert location.count(50.0) == len(location.all(50.0)) == 3
    assert location.count(150.0) == len(location.all(150.0)) == 2  # not swept yet, not counted
    assert location.count(300.0) == 0


def _binding(uri: str, expires_at: float) -> Binding:
    return Binding("a", uri, expires_at, "c", 1, SOURCE, 0.0)


def test_expire_and_count_follow_refreshes_and_removals() -> None:
    """The earliest-expiry bound lets a sweep skip its pass, never a due binding."""
    location = Location()
    location.put(_binding("sip:1@h", 100.0))
    location.put(_binding("sip:2@h", 50.0))
    assert location.expire(40.0) == []
    assert [b.uri for b in location.expire(60.0)] == ["sip:2@h"]
    assert location.count(70.0) == 1
    location.put(_binding("sip:1@h", 200.0))  # a refresh: the bound (100) is now stale
    assert location.expire(150.0) == [] and location.count(150.0) == 1
    location.put(_binding("sip:3@h", 120.0))  # expires before the bound
    assert location.count(160.0) == len(location.all(160.0)) == 1
    assert [b.uri for b in location.expire(160.0)] == ["sip:3@h"]
    location.remove("a", "sip:1@h")
    assert location.count(0.0) == 0 and location.expire(1e9) == []
