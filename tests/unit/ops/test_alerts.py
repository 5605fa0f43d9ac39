"""The alert rule engine, stepped by hand (no clock, no sockets)."""

from __future__ import annotations

import pytest

from callway.ops.alerts import (
    AlertEngine,
    AlertEvent,
    AlertRules,
    FailureRatioHigh,
    FailureRatioNormal,
    RegistrationsDropped,
)


def drain(engine: AlertEngine) -> list[AlertEvent]:
    events = []
    while (event := engine.next_event()) is not None:
        events.append(event)
    return events


# -- registrations -------------------------------------------------------------


def test_a_sharp_drop_within_the_window_alerts_once() -> None:
    engine = AlertEngine(uri="sip:pbx1")
    for t in range(0, 30, 5):
        engine.observe_registrations(100, float(t))
    engine.observe_registrations(90, 30.0)  # -10 %: fine
    assert drain(engine) == []
    engine.observe_registrations(60, 35.0)  # -40 % of the peak
    assert drain(engine) == [RegistrationsDropped(100, 60, 60.0, "sip:pbx1")]
    engine.observe_registrations(55, 40.0)  # the same drop, not a new one
    assert drain(engine) == []


def test_exactly_the_threshold_is_not_a_drop() -> None:
    engine = AlertEngine()
    engine.observe_registrations(100, 0.0)
    engine.observe_registrations(70, 1.0)  # exactly 30 %: not "more than"
    assert drain(engine) == []
    engine.observe_registrations(69, 2.0)
    assert [type(e) for e in drain(engine)] == [RegistrationsDropped]


def test_a_slow_decline_is_not_sharp() -> None:
    engine = AlertEngine()
    for t in range(0, 1200, 10):  # 100 down to 40 over 20 minutes
        engine.observe_registrations(100 - t // 20, float(t))
    assert drain(engine) == []


def test_small_peaks_are_ignored() -> None:
    engine = AlertEngine(AlertRules(registration_min=5))
    engine.observe_registrations(4, 0.0)
    engine.observe_registrations(0, 1.0)
    assert drain(engine) == []


def test_registration_alerts_are_rate_limited() -> None:
    engine = AlertEngine(AlertRules(min_interval=300.0))
    engine.observe_registrations(100, 0.0)
    engine.observe_registrations(50, 1.0)
    assert len(drain(engine)) == 1
    engine.observe_registrations(100, 10.0)  # recovered
    engine.observe_registrations(40, 20.0)  # dropped again, but too soon
    assert drain(engine) == []
    assert engine.suppressed == 1
    engine.observe_registrations(100, 301.0)
    engine.observe_registrations(30, 302.0)
    assert drain(engine) == [RegistrationsDropped(100, 30, 60.0)]


# -- call failures -------------------------------------------------------------


RULES = AlertRules(failure_ratio=0.5, failure_window=60.0, failure_min_calls=10, min_interval=120.0)


def test_failure_ratio_crossing_up_then_down() -> None:
    engine = AlertEngine(RULES, uri="sip:pbx1")
    for i in range(10):
        engine.record_cdr("ANSWERED", float(i))
    for i in range(9):
        engine.record_cdr("FAILED", 10.0 + i)
    assert drain(engine) == []  # 9 / 19
    engine.record_cdr("BUSY", 19.5)  # 10 / 20 = 50 %
    assert drain(engine) == [FailureRatioHigh(0.5, 10, 20, 60.0, 0.5, "sip:pbx1")]
    engine.record_cdr("NO ANSWER", 20.0)
    assert drain(engine) == []  # still high: no repeat
    # the window slides past the answered calls and the failures, then good calls
    for i in range(12):
        engine.record_cdr("ANSWERED", 200.0 + i)
    events = drain(engine)
    assert len(events) == 1 and isinstance(events[0], FailureRatioNormal)
    assert (events[0].failures, events[0].calls) == (0, 10)


def test_too_few_calls_never_alert() -> None:
    engine = AlertEngine(RULES)
    for i in range(9):
        engine.record_call(True, float(i))
    assert drain(engine) == []
    assert engine.failure_ratio == 1.0


def test_status_codes_count_5xx_only() -> None:
    engine = AlertEngine(RULES)
    for i, status in enumerate([486, 404, 200, 603, 487] * 2):
        engine.record_status(status, float(i))
    assert drain(engine) == [] and engine.failure_ratio == 0.0
    for i in range(10):
        engine.record_status(503, 20.0 + i)
    assert [type(e) for e in drain(engine)] == [FailureRatioHigh]


def test_handle_timer_slides_the_window_without_calls() -> None:
    engine = AlertEngine(RULES)
    for i in range(10):
        engine.record_call(True, float(i))
    assert len(drain(engine)) == 1
    engine.handle_timer(200.0)
    assert engine.failure_ratio == 0.0
    assert drain(engine) == []  # an empty window is no verdict either way


def test_window_edges_are_exact() -> None:
    engine = AlertEngine(RULES)
    engine.record_call(True, 0.2)  # in the bucket of second 0
    engine.handle_timer(60.9)  # 60 s window: second 0 is still inside
    assert engine.failure_ratio == 1.0
    engine.handle_timer(61.0)
    assert engine.failure_ratio == 0.0


def test_failure_alerts_are_rate_limited_per_kind() -> None:
    engine = AlertEngine(RULES)
    t = 0.0
    for _ in range(10):
        engine.record_call(True, t)
        t += 1
    assert [type(e) for e in drain(engine)] == [FailureRatioHigh]
    # recovers quickly: "normal" is its own kind, so it is sent
    for _ in range(60):
        engine.record_call(False, t)
        t += 0.1
    assert [type(e) for e in drain(engine)] == [FailureRatioNormal]
    # fails again within min_interval (120 s) of the first "high" (t=9): held back
    while t < 128.5:
        engine.record_call(True, t)
        t += 1
    assert drain(engine) == []
    assert engine.suppressed > 0
    engine.handle_timer(129.0)  # still failing once the interval has passed
    assert [type(e) for e in drain(engine)] == [FailureRatioHigh]


def test_hysteresis_keeps_a_borderline_ratio_from_flapping() -> None:
    engine = AlertEngine(AlertRules(failure_ratio=0.5, failure_hysteresis=0.1, min_interval=0))
    for i in range(10):
        engine.record_call(i % 2 == 0, float(i))  # 50 %
    assert [type(e) for e in drain(engine)] == [FailureRatioHigh]
    engine.record_call(False, 10.0)  # 5 / 11 = 45 %: not below 40 %
    assert drain(engine) == []
    for i in range(3):
        engine.record_call(False, 11.0 + i)  # 5 / 14 = 36 %
    assert [type(e) for e in drain(engine)] == [FailureRatioNormal]


@pytest.mark.parametrize(
    "bad",
    [
        {"registration_drop": 0},
        {"registration_drop": 1.5},
        {"failure_ratio": 0},
        {"failure_window": 0},
        {"min_interval": -1},
    ],
)
def test_bad_rules(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AlertRules(**bad)  # type: ignore[arg-type]


def test_causes_read_well() -> None:
    assert (
        RegistrationsDropped(100, 60, 60.0).cause == "registrations fell from 100 to 60 within 60 s"
    )
    high = FailureRatioHigh(0.5, 10, 20, 300.0, 0.5)
    assert high.cause == "10 of 20 calls failed in the last 300 s (50% >= 50%)"
    assert "back below 50%" in FailureRatioNormal(0.2, 2, 10, 300.0, 0.5).cause
