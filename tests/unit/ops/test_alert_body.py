"""Webhook bodies of the ops alerts, compatible with the prober's."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest

from callway.app.alerts import alert_body
from callway.app.ops_alerts import OpsAlertSender, ops_alert_body
from callway.ops.alerts import FailureRatioHigh, FailureRatioNormal, RegistrationsDropped


@dataclass
class DestinationDown:
    uri: str
    setid: int
    cause: str


def test_registration_drop_body() -> None:
    body = ops_alert_body(RegistrationsDropped(100, 60, 60.0, "sip:pbx1"))
    assert set(body) >= set(alert_body(object()))  # every key the receiver knows
    assert body["event"] == "registrations_drop"
    assert body["uri"] == "sip:pbx1"
    assert body["setid"] is None
    assert body["reason"] == "registrations fell from 100 to 60 within 60 s"
    assert body["details"] == {"previous": 100, "current": 60, "window": 60.0}
    assert isinstance(body["time"], float)
    json.dumps(body)


@pytest.mark.parametrize(
    ("event", "name"),
    [
        (FailureRatioHigh(0.6, 12, 20, 300.0, 0.5, "sip:pbx1"), "call_failures_high"),
        (FailureRatioNormal(0.1, 2, 20, 300.0, 0.5, "sip:pbx1"), "call_failures_normal"),
    ],
)
def test_failure_ratio_bodies(event: FailureRatioHigh | FailureRatioNormal, name: str) -> None:
    body = ops_alert_body(event)
    assert body["event"] == name
    assert body["details"]["calls"] == 20
    assert body["details"]["threshold"] == 0.5
    assert body["reason"] == event.cause


def test_prober_events_keep_their_body() -> None:
    event = DestinationDown("sip:10.0.0.2:5060", 1, "timeout")
    body = ops_alert_body(event)
    expected = alert_body(event)
    body.pop("time"), expected.pop("time")
    assert (
        body
        == expected
        == {
            "event": "node_down",
            "uri": "sip:10.0.0.2:5060",
            "setid": 1,
            "reason": "timeout",
        }
    )


def test_sender_logs_every_alert_even_without_a_url(caplog: pytest.LogCaptureFixture) -> None:
    sender = OpsAlertSender("")
    with caplog.at_level(logging.WARNING, logger="callway.alerts"):
        sender.send(RegistrationsDropped(100, 60, 60.0, "sip:pbx1"))
    assert [r.getMessage() for r in caplog.records] == [
        "ALERT registrations_drop sip:pbx1: registrations fell from 100 to 60 within 60 s"
    ]
