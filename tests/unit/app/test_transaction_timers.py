"""pjsip.conf ``type=system`` timer_t1/timer_b reach the transaction layer (Asterisk's names)."""

from __future__ import annotations

from callway.app.pbx import transaction_timers
from callway.config.pjsip import parse_pjsip
from callway.sip.transaction import TransactionLayer
from callway.sip.transaction.timers import Interval, TransactionConfig


def test_defaults_are_rfc_3261s() -> None:
    timers = transaction_timers(parse_pjsip("", "pjsip.conf"))
    assert timers == TransactionConfig()
    assert timers.interval(Interval.TIMER_B, reliable=False, last=None) == 32.0


def test_timer_t1_scales_every_64_t1_timer_and_timer_b_stays_as_set() -> None:
    text = "[system]\ntype=system\ntimer_t1=100\n"
    timers = transaction_timers(parse_pjsip(text, "pjsip.conf"))
    assert timers.t1 == 0.1
    assert timers.interval(Interval.T1_X64_OR_ZERO, reliable=False, last=None) == 6.4  # J
    assert timers.interval(Interval.TIMER_B, reliable=False, last=None) == 32.0  # default 32000
    layer = TransactionLayer(timers)
    assert layer.config.t1 == 0.1


def test_timer_b_apart_from_t1() -> None:
    text = "[system]\ntype=system\ntimer_t1=500\ntimer_b=64000\n"
    timers = transaction_timers(parse_pjsip(text, "pjsip.conf"))
    assert timers.interval(Interval.TIMER_B, reliable=False, last=None) == 64.0
    assert timers.interval(Interval.T1_X64, reliable=False, last=None) == 32.0  # F, H, L, M


def test_an_invite_client_times_out_at_timer_b() -> None:
    from callway.core.address import Address
    from callway.sip.message import Request
    from callway.sip.transaction import TransactionTimeout, new_branch

    layer = TransactionLayer(TransactionConfig(timer_b=40.0))
    invite = Request(
        "INVITE",
        "sip:b@192.0.2.2",
        [
            ("Via", f"SIP/2.0/TCP 192.0.2.1:5060;branch={new_branch()}"),
            ("To", "<sip:b@192.0.2.2>"),
            ("From", "<sip:a@192.0.2.1>;tag=1"),
            ("Call-ID", "b1"),
            ("CSeq", "1 INVITE"),
        ],
    )
    key = layer.send_request(invite, Address("tcp", "192.0.2.2", 5060), 0.0)
    assert layer.get_timer() == 40.0  # no Timer A over TCP: the next timer is B
    layer.handle_timer(40.0)
    assert layer.next_event() == TransactionTimeout(key)
