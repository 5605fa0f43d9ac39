"""Webhook bodies and sender for the ops alerts (and a log line for each).

:func:`ops_alert_body` extends :func:`callway.app.alerts.alert_body`
compatibly: the same keys (``event``, ``uri``, ``setid``, ``reason``,
``time``) with ``event`` naming the ops alert (``registrations_drop``,
``call_failures_high``, ``call_failures_normal``) and the numbers under
``details``; prober events (DestinationUp/Down) keep their existing body.
:class:`OpsAlertSender` is an :class:`~callway.app.alerts.AlertSender` that
uses it and logs every alert, so an operator without a webhook still sees it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from callway.app.alerts import AlertSender, alert_body
from callway.ops.alerts import FailureRatioHigh, FailureRatioNormal, RegistrationsDropped

__all__ = ["OpsAlertSender", "ops_alert_body"]

log = logging.getLogger("callway.alerts")

_OPS_EVENTS = (RegistrationsDropped, FailureRatioHigh, FailureRatioNormal)


def ops_alert_body(event: object) -> dict[str, Any]:
    """The JSON object for an ops alert, or :func:`alert_body` for a prober event."""
    if not isinstance(event, _OPS_EVENTS):
        return alert_body(event)
    details = dataclasses.asdict(event)
    details.pop("uri", None)
    return {
        "event": event.kind,
        "uri": event.uri,
        "setid": None,
        "reason": event.cause,
        "time": time.time(),
        "details": details,
    }


class OpsAlertSender(AlertSender):
    """Posts ops alerts (and prober events) and logs each one as a warning."""

    def send(self, event: object) -> None:
        """Log the alert and queue its webhook POST (when a URL is set)."""
        body = ops_alert_body(event)
        log.warning("ALERT %s %s: %s", body["event"], body["uri"], body["reason"])
        if not self.url:
            return
        task = asyncio.get_running_loop().create_task(self._post(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
