"""RFC 4028 session timers: negotiation of an INVITE and the refresh/expiry schedule.

Everything here is sans-I/O: the schedule is stepped with a hand-held clock,
so a 90-second interval is checked without waiting for it.
"""

from __future__ import annotations

import pytest

from callway.app.b2bua.timers import Negotiated, SessionTimer, TimerAction, negotiate
from callway.pbx.model import Endpoint
from callway.sip.message import Request


def endpoint(timers: str = "yes", min_se: int = 90, sess_expires: int = 1800) -> Endpoint:
    return Endpoint(
        name="8005", timers=timers, timers_min_se=min_se, timers_sess_expires=sess_expires
    )


def invite(*headers: tuple[str, str]) -> Request:
    base = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"),
        ("From", "<sip:8005@127.0.0.1>;tag=a"),
        ("To", "<sip:8006@127.0.0.1>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 INVITE"),
    ]
    return Request("INVITE", "sip:8006@127.0.0.1", [*base, *headers])


SUPPORTED = ("Supported", "replaces, timer")


def test_caller_with_timer_support_refreshes_itself() -> None:
    result = negotiate(endpoint(), invite(SUPPORTED))
    assert result == Negotiated(interval=1800, refresher="uac", caller_supports=True, min_se=90)
    assert result.answer_headers() == (
        ("Session-Expires", "1800;refresher=uac"),
        ("Require", "timer"),
    )


def test_requested_interval_and_refresher_are_honoured() -> None:
    result = negotiate(endpoint(), invite(SUPPORTED, ("Session-Expires", "600;refresher=uas")))
    assert (result.interval, result.refresher) == (600, "uas")
    # the compact form (x) works the same
    result = negotiate(endpoint(), invite(("k", "timer"), ("x", "300")))
    assert (result.interval, result.refresher) == (300, "uac")


def test_too_small_session_expires_gets_422_with_min_se() -> None:
    result = negotiate(endpoint(min_se=120), invite(SUPPORTED, ("Session-Expires", "100")))
    assert result.status == 422
    assert result.reject_headers() == (("Min-SE", "120"),)


def test_min_se_of_the_request_raises_the_interval() -> None:
    result = negotiate(endpoint(sess_expires=90), invite(SUPPORTED, ("Min-SE", "200")))
    assert result.interval == 200


def test_caller_without_support() -> None:
    assert not negotiate(endpoint("yes"), invite()).active
    required = negotiate(endpoint("required"), invite())
    assert (required.status, required.reject_headers()) == (421, (("Require", "timer"),))
    always = negotiate(endpoint("always"), invite())
    assert (always.interval, always.refresher, always.caller_supports) == (1800, "uas", False)
    assert always.answer_headers() == (("Session-Expires", "1800;refresher=uas"),)


def test_timers_no_ignores_the_extension() -> None:
    result = negotiate(endpoint("no"), invite(SUPPORTED, ("Session-Expires", "30")))
    assert (result.status, result.active, result.answer_headers()) == (0, False, ())


def test_refresher_refreshes_at_half_the_interval() -> None:
    timer = SessionTimer(90, we_refresh=True, now=1000.0)
    assert timer.get_timer() == 1045.0
    assert timer.handle_timer(1044.9) is None
    assert timer.handle_timer(1045.0) is TimerAction.REFRESH
    assert timer.get_timer() == 1090.0
    timer.refreshed(1046.0)
    assert timer.get_timer() == 1091.0


@pytest.mark.parametrize(("interval", "deadline"), [(90, 1060.0), (1800, 2768.0)])
def test_without_refresh_the_session_expires_before_the_interval(
    interval: int, deadline: float
) -> None:
    """§10: BYE at interval - min(32, interval / 3) when the peer should have refreshed."""
    timer = SessionTimer(interval, we_refresh=False, now=1000.0)
    assert timer.get_timer() == deadline
    assert timer.handle_timer(deadline - 0.1) is None
    assert timer.handle_timer(deadline) is TimerAction.EXPIRE
    assert timer.get_timer() is None


def test_a_peer_refresh_postpones_the_expiry() -> None:
    timer = SessionTimer(90, we_refresh=False, now=1000.0)
    timer.refreshed(1050.0, 120)
    assert timer.handle_timer(1060.0) is None
    assert timer.get_timer() == 1050.0 + 120 - 32
