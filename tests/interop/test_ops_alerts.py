"""Ops alerts end to end: rule engine -> OpsAlertSender -> a real HTTP webhook.

The engine is driven by hand (its inputs are plain numbers and CDR
dispositions, fed by the app once wired); the alerts travel as signed JSON
POSTs to an aiohttp receiver started by the test, which checks the HMAC the
way a receiver would.  Rate limiting: a second drop within ``min_interval``
posts nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from aiohttp import web

from callway.app.ops_alerts import OpsAlertSender
from callway.ops.alerts import AlertEngine, AlertRules

pytestmark = [pytest.mark.interop, pytest.mark.timeout(30)]

SECRET = "webhook-secret"


async def receiver(received: list[dict[str, Any]]) -> tuple[web.AppRunner, str]:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if request.headers.get("X-Callway-Signature") != expected:
            return web.Response(status=401)
        received.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook"


def test_alerts_reach_the_webhook_signed_and_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[dict[str, Any]] = []

    async def scenario() -> None:
        runner, url = await receiver(received)
        sender = OpsAlertSender(url, SECRET)
        engine = AlertEngine(
            AlertRules(failure_min_calls=10, failure_window=60, min_interval=300),
            uri="sip:pbx1.example.com",
        )

        def flush() -> None:
            while (event := engine.next_event()) is not None:
                sender.send(event)

        try:
            for t in range(0, 60, 10):  # 40 phones registered, then half vanish
                engine.observe_registrations(40, float(t))
            engine.observe_registrations(20, 60.0)
            flush()
            engine.observe_registrations(40, 70.0)
            engine.observe_registrations(10, 80.0)  # again, within min_interval
            flush()
            for i in range(12):  # calls start failing
                engine.record_cdr("ANSWERED" if i < 4 else "FAILED", 100.0 + i)
            flush()
        finally:
            await sender.close()
            await runner.cleanup()
        assert (sender.sent, sender.failed) == (2, 0)

    with caplog.at_level(logging.WARNING, logger="callway.alerts"):
        asyncio.run(scenario())
    assert [body["event"] for body in received] == ["registrations_drop", "call_failures_high"]
    drop, failures = received
    assert drop["uri"] == failures["uri"] == "sip:pbx1.example.com"
    assert drop["details"] == {"previous": 40, "current": 20, "window": 60.0}
    assert drop["reason"] == "registrations fell from 40 to 20 within 60 s"
    assert failures["details"]["calls"] == 10 and failures["details"]["failures"] == 6
    assert {"event", "uri", "setid", "reason", "time"} <= set(failures)
    alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert len(alerts) == 2
