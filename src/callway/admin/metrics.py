"""Prometheus metrics of one node, in a registry of its own.

:class:`Metrics` turns successive backend snapshots into counters: a call is
counted once when first seen active, or from its CDR when it began and ended
between two updates; failed calls are counted from CDRs by disposition; RTP
packets by the growth of each active leg's counters; and a finished call's
last measured loss, jitter and MOS go into histograms.  The admin server calls
:meth:`Metrics.update` every second and before each scrape.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from callway.admin.backend import AdminBackend
from callway.admin.model import Call, Cdr, Destination

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

LOSS_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
JITTER_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)
MOS_BUCKETS = (1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4)


class _NodeCounters(Collector):
    """``callway_events_total{event}`` straight from the node's own monotonic counters."""

    def __init__(self, backend: AdminBackend) -> None:
        self.backend = backend

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "callway_events", "Events counted by the node (proxy outcomes, ...)", labels=["event"]
        )
        for name, value in sorted(self.backend.node_info().counters.items()):
            family.add_metric([name], value)
        yield family


class Metrics:
    """The ``callway_*`` metrics of one admin server."""

    def __init__(self, backend: AdminBackend) -> None:
        self.backend = backend
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_total = Counter("callway_calls", "Calls started", registry=r)
        self.failed_calls = Counter(
            "callway_failed_calls", "Calls that ended unanswered, by disposition",
            ["status"], registry=r,
        )  # fmt: skip
        self.active_calls = Gauge("callway_active_calls", "Calls in progress", registry=r)
        self.registrations = Gauge("callway_registrations", "Registered contacts", registry=r)
        self.destination_up = Gauge(
            "callway_dispatcher_destination_up",
            "1 if the dispatcher may select the destination (state A or T), else 0",
            ["setid", "uri"], registry=r,
        )  # fmt: skip
        self.rtp_packets = Counter(
            "callway_rtp_packets", "RTP packets received from phones by the relay", registry=r
        )
        self.loss = Histogram(
            "callway_call_loss_ratio", "Packet loss of finished call legs (fraction)",
            buckets=LOSS_BUCKETS, registry=r,
        )  # fmt: skip
        self.jitter = Histogram(
            "callway_call_jitter_seconds", "RFC 3550 interarrival jitter of finished call legs",
            buckets=JITTER_BUCKETS, registry=r,
        )  # fmt: skip
        self.mos = Histogram(
            "callway_call_mos", "Estimated MOS (E-model) of finished calls",
            buckets=MOS_BUCKETS, registry=r,
        )  # fmt: skip
        r.register(_NodeCounters(backend))
        self._active: dict[str, Call] = {}
        self._counted: set[str] = set()  # calls counted while active, until their CDR
        self._packets: dict[tuple[str, str], int] = {}
        self._cdr_cursor: float | None = None
        self._counted_cdrs: set[tuple[str, float]] = set()

    def update(
        self,
        calls: list[Call] | None = None,
        registrations: int | None = None,
        destinations: list[Destination] | None = None,
    ) -> None:
        """Fold in the current state (what is not given is read from the backend)."""
        b = self.backend
        calls = b.calls() if calls is None else calls
        self._update_calls(calls)
        self._update_cdrs(b.cdrs(since=self._cdr_cursor))
        self.registrations.set(b.registration_count() if registrations is None else registrations)
        self._update_destinations(b.dispatcher_sets() if destinations is None else destinations)

    def _update_calls(self, calls: list[Call]) -> None:
        self.active_calls.set(len(calls))
        current = {call.id: call for call in calls}
        for call_id, call in current.items():
            if call_id not in self._active and call_id not in self._counted:
                self.calls_total.inc()
                self._counted.add(call_id)
            for leg in call.legs:
                key = (call_id, leg.name)
                grown = leg.packets_in - self._packets.get(key, 0)
                if grown > 0:
                    self.rtp_packets.inc(grown)
                self._packets[key] = max(leg.packets_in, self._packets.get(key, 0))
        for call_id, call in self._active.items():
            if call_id not in current:
                self._finished(call)
        self._active = current

    def _finished(self, call: Call) -> None:
        for leg in call.legs:
            self._packets.pop((call.id, leg.name), None)
            if leg.quality.loss is not None:
                self.loss.observe(leg.quality.loss)
            if leg.quality.jitter_ms is not None:
                self.jitter.observe(leg.quality.jitter_ms / 1000.0)
        if call.mos is not None:
            self.mos.observe(call.mos)

    def _update_cdrs(self, cdrs: list[Cdr]) -> None:
        for cdr in cdrs:
            key = (cdr.uniqueid, cdr.end)
            if key in self._counted_cdrs:
                continue
            self._counted_cdrs.add(key)
            if cdr.uniqueid in self._counted:
                self._counted.discard(cdr.uniqueid)
            else:
                self.calls_total.inc()  # began and ended between two updates
            if cdr.disposition != "ANSWERED":
                self.failed_calls.labels(status=cdr.disposition).inc()
            if self._cdr_cursor is None or cdr.end > self._cdr_cursor:
                self._cdr_cursor = cdr.end
        # Only records ending at the cursor can be returned again.
        self._counted_cdrs = {k for k in self._counted_cdrs if k[1] >= (self._cdr_cursor or 0)}
        if len(self._counted) > 10 * len(self._active) + 1000:  # CDRs that never came
            self._counted &= set(self._active)

    def _update_destinations(self, destinations: list[Destination]) -> None:
        self.destination_up.clear()
        for dest in destinations:
            self.destination_up.labels(setid=str(dest.setid), uri=dest.uri).set(
                1 if dest.usable else 0
            )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
