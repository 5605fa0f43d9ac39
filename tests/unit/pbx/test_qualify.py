"""Qualify scheduling (res_pjsip qualify_frequency/qualify_timeout), sans-I/O."""

from __future__ import annotations

from callway.core.address import Address
from callway.pbx.location import Binding
from callway.pbx.model import Aor
from callway.pbx.qualify import ContactStatus, Qualifier, SendOptions, StatusChanged

SOURCE = Address("udp", "203.0.113.9", 40000)


def binding(aor: str = "8005", expires_at: float = 10_000.0) -> Binding:
    return Binding(aor, f"sip:{aor}@192.168.1.10:5060", expires_at, "cid", 1, SOURCE, 0.0)


def make(aors: dict[str, Aor], bindings: dict[tuple[str, str], Binding]) -> Qualifier:
    return Qualifier(aors.get, lambda aor, uri: bindings.get((aor, uri)))


def events(q: Qualifier) -> list[object]:
    found = []
    while (event := q.next_event()) is not None:
        found.append(event)
    return found


def test_pings_every_frequency_and_marks_reachable() -> None:
    b = binding()
    q = make({"8005": Aor("8005", qualify_frequency=5)}, {("8005", b.uri): b})
    q.on_binding(b, 100.0)
    assert q.get_timer() == 100.0
    q.handle_timer(100.0)
    [send] = events(q)
    assert isinstance(send, SendOptions) and send.binding == b
    q.response(send.token, 200, 100.05)
    [changed] = events(q)
    assert changed == StatusChanged("8005", b.uri, ContactStatus.REACHABLE, changed.rtt)
    assert changed.rtt is not None and abs(changed.rtt - 0.05) < 1e-9
    assert q.get_timer() == 105.0
    q.handle_timer(105.0)
    [send2] = events(q)
    assert isinstance(send2, SendOptions) and send2.token != send.token
    q.response(send2.token, 404, 105.01)  # any answer means someone is there
    assert events(q) == []  # still reachable: no change reported
    assert q.status("8005", b.uri)[0] is ContactStatus.REACHABLE


def test_timeout_marks_unreachable_and_late_answers_are_ignored() -> None:
    b = binding()
    q = make({"8005": Aor("8005", qualify_frequency=10, qualify_timeout=2.0)},
             {("8005", b.uri): b})  # fmt: skip
    q.on_binding(b, 0.0)
    q.handle_timer(0.0)
    [send] = events(q)
    assert q.get_timer() == 2.0
    q.handle_timer(2.0)
    [changed] = events(q)
    assert isinstance(changed, StatusChanged) and changed.status is ContactStatus.UNREACHABLE
    q.response(send.token, 200, 2.5)  # too late
    assert events(q) == []
    q.handle_timer(10.0)
    [send2] = events(q)
    assert isinstance(send2, SendOptions)
    q.response(send2.token, None, 12.0)  # the transaction layer gave up (Timer F)
    assert events(q) == []


def test_no_qualify_without_frequency_and_gone_contacts_drop_out() -> None:
    b = binding()
    bindings = {("8005", b.uri): b}
    q = make({"8005": Aor("8005", qualify_frequency=0)}, bindings)
    q.on_binding(b, 0.0)
    assert len(q) == 0 and q.get_timer() is None
    q = make({"8005": Aor("8005", qualify_frequency=5)}, bindings)
    q.on_binding(b, 0.0)
    q.on_binding(b, 1.0)  # a refresh does not reschedule
    q.handle_timer(0.0)
    [send] = events(q)
    assert isinstance(send, SendOptions)
    q.response(send.token, 200, 0.1)
    assert len(events(q)) == 1  # Reachable
    del bindings[("8005", b.uri)]  # unregistered
    q.handle_timer(5.0)
    assert events(q) == [] and len(q) == 0


def test_expired_binding_is_not_pinged() -> None:
    b = binding(expires_at=3.0)
    q = make({"8005": Aor("8005", qualify_frequency=5)}, {("8005", b.uri): b})
    q.on_binding(b, 0.0)
    q.handle_timer(0.0)
    events(q)
    q.handle_timer(5.0)
    assert [e for e in events(q) if isinstance(e, SendOptions)] == []
