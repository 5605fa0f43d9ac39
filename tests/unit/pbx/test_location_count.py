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
