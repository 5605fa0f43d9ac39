"""Prometheus metrics: names, parsing, and counters that follow calls."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from callway.admin.metrics import Metrics
from tests.unit.admin.fakes import (
    AUTH,
    Client,
    FakeBackend,
    call,
    cdr,
    destination,
    registration,
    with_client,
)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return _samples(metrics.render().decode()).get((name, tuple(sorted(labels.items()))), 0.0)


def test_endpoint_serves_every_name_and_parses() -> None:
    backend = FakeBackend(regs=[registration()], active=[call()],
                          destinations=[destination(), destination("sip:127.0.0.2", "IP")],
                          counters={"forwarded": 7})  # fmt: skip

    async def body(client: Client) -> None:
        response = await client.get("/metrics", headers=AUTH)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
        for name in ("callway_calls_total", "callway_active_calls", "callway_registrations",
                     "callway_failed_calls_total", "callway_dispatcher_destination_up",
                     "callway_rtp_packets_total", "callway_call_loss_ratio_bucket",
                     "callway_call_jitter_seconds_bucket", "callway_call_mos_bucket",
                     "callway_events_total"):  # fmt: skip
            assert name in text, name
        samples = _samples(text)
        assert samples[("callway_active_calls", ())] == 1
        assert samples[("callway_registrations", ())] == 1
        up = "callway_dispatcher_destination_up"
        assert samples[(up, (("setid", "1"), ("uri", "sip:127.0.0.1:5070")))] == 1
        assert samples[(up, (("setid", "1"), ("uri", "sip:127.0.0.2")))] == 0
        assert samples[("callway_events_total", (("event", "forwarded"),))] == 7
        assert all(not n.startswith("python_") for n, _ in samples)  # own registry only

    with_client(backend, body)


def test_counters_follow_calls() -> None:
    backend = FakeBackend()
    metrics = Metrics(backend)
    metrics.update()
    assert _value(metrics, "callway_calls_total") == 0

    backend.active = [call("00000001", packets=100)]
    metrics.update()
    assert _value(metrics, "callway_calls_total") == 1
    assert _value(metrics, "callway_rtp_packets_total") == 200  # two legs

    backend.active = [call("00000001", packets=150), call("00000002", packets=10)]
    metrics.update()
    assert _value(metrics, "callway_calls_total") == 2
    assert _value(metrics, "callway_active_calls") == 2
    assert _value(metrics, "callway_rtp_packets_total") == 200 + 100 + 20

    # Call 1 ends answered; call 3 started and failed between two updates.
    backend.active = [call("00000002", packets=10)]
    backend.records = [cdr("00000001", "ANSWERED", end=1000.0), cdr("00000003", "BUSY", 1001.0)]
    metrics.update()
    assert _value(metrics, "callway_calls_total") == 3
    assert _value(metrics, "callway_failed_calls_total", status="BUSY") == 1
    assert _value(metrics, "callway_active_calls") == 1
    # The finished call's quality went into the histograms (leg a measured, leg b not).
    assert _value(metrics, "callway_call_loss_ratio_count") == 1
    assert _value(metrics, "callway_call_jitter_seconds_sum") == 0.0125
    assert _value(metrics, "callway_call_mos_count") == 1

    metrics.update()  # the same CDRs again: nothing counted twice
    assert _value(metrics, "callway_calls_total") == 3
    assert _value(metrics, "callway_failed_calls_total", status="BUSY") == 1

    backend.active = []
    backend.records.append(cdr("00000002", "NO ANSWER", end=1002.0))
    metrics.update()
    assert _value(metrics, "callway_calls_total") == 3
    assert _value(metrics, "callway_failed_calls_total", status="NO ANSWER") == 1


def test_removed_destinations_leave_the_metrics() -> None:
    backend = FakeBackend(destinations=[destination("sip:a"), destination("sip:b")])
    metrics = Metrics(backend)
    metrics.update()
    backend.destinations = [destination("sip:b", "DX")]
    metrics.update()
    text = metrics.render().decode()
    assert 'uri="sip:a"' not in text
    assert _value(metrics, "callway_dispatcher_destination_up", setid="1", uri="sip:b") == 0


def test_two_servers_have_separate_registries() -> None:
    first, second = Metrics(FakeBackend()), Metrics(FakeBackend())
    first.calls_total.inc()
    assert _value(first, "callway_calls_total") == 1
    assert _value(second, "callway_calls_total") == 0
