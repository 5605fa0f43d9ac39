"""Alert rules, sans-I/O: registrations dropping sharply, call failures rising.

The app feeds :class:`AlertEngine` with what it already knows, passing the
time in (``now``, seconds) -- no clock, no socket:

- :meth:`AlertEngine.observe_registrations` with the current number of
  registered contacts, periodically (every few seconds);
- :meth:`AlertEngine.record_cdr` with each call's disposition (anything but
  ``ANSWERED`` is a failure), or :meth:`AlertEngine.record_status` with each
  final status (a 5xx is a failure), or :meth:`AlertEngine.record_call`;
- :meth:`AlertEngine.handle_timer` now and then, so the failure window slides
  even when no call comes.

and then drains :meth:`AlertEngine.next_event` into
:class:`~callway.app.ops_alerts.OpsAlertSender`.  Each kind of alert is sent
at most once per ``min_interval``; an alert held back by that limit is counted
in ``suppressed`` and the condition is checked again later.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AlertEngine",
    "AlertEvent",
    "AlertRules",
    "FailureRatioHigh",
    "FailureRatioNormal",
    "RegistrationsDropped",
]


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds (the defaults suit a small call center)."""

    registration_drop: float = 0.30
    """Alert when registrations fall by more than this fraction ..."""
    registration_window: float = 60.0
    """... of their peak within this many seconds."""
    registration_min: int = 5
    """Peaks below this are too small to judge."""
    failure_ratio: float = 0.5
    """Alert when this fraction of the calls in the window failed (or more)."""
    failure_window: float = 300.0
    """The sliding window of calls, in seconds."""
    failure_min_calls: int = 10
    """Fewer calls in the window are too few to judge."""
    failure_hysteresis: float = 0.1
    """Back to normal once the ratio is below ``failure_ratio - failure_hysteresis``."""
    min_interval: float = 300.0
    """At most one alert of each kind per this many seconds."""

    def __post_init__(self) -> None:
        if not 0 < self.registration_drop < 1:
            raise ValueError("registration_drop must be between 0 and 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.registration_window <= 0 or self.failure_window <= 0:
            raise ValueError("windows must be positive")
        if self.min_interval < 0 or self.failure_hysteresis < 0:
            raise ValueError("min_interval and failure_hysteresis must be >= 0")


@dataclass(frozen=True, slots=True)
class RegistrationsDropped:
    """Registered contacts fell sharply (phones lost their network, or a node died)."""

    kind: ClassVar[str] = "registrations_drop"
    previous: int
    current: int
    window: float
    uri: str = ""

    @property
    def cause(self) -> str:
        """A one-line description (the webhook's ``reason``)."""
        return f"registrations fell from {self.previous} to {self.current} within {self.window:g} s"


@dataclass(frozen=True, slots=True)
class FailureRatioHigh:
    """The share of failed calls in the window reached the threshold."""

    kind: ClassVar[str] = "call_failures_high"
    ratio: float
    failures: int
    calls: int
    window: float
    threshold: float
    uri: str = ""

    @property
    def cause(self) -> str:
        """A one-line description (the webhook's ``reason``)."""
        return (
            f"{self.failures} of {self.calls} calls failed in the last {self.window:g} s "
            f"({self.ratio:.0%} >= {self.threshold:.0%})"
        )


@dataclass(frozen=True, slots=True)
class FailureRatioNormal:
    """The share of failed calls fell back below the threshold."""

    kind: ClassVar[str] = "call_failures_normal"
    ratio: float
    failures: int
    calls: int
    window: float
    threshold: float
    uri: str = ""

    @property
    def cause(self) -> str:
        """A one-line description (the webhook's ``reason``)."""
        return (
            f"{self.failures} of {self.calls} calls failed in the last {self.window:g} s "
            f"({self.ratio:.0%}, back below {self.threshold:.0%})"
        )


AlertEvent = RegistrationsDropped | FailureRatioHigh | FailureRatioNormal


class AlertEngine:
    """Evaluates the rules on what it is fed; queues :data:`AlertEvent` objects.

    ``uri`` names this node in every event (the webhook's ``uri``).
    """

    def __init__(self, rules: AlertRules | None = None, *, uri: str = "") -> None:
        self.rules = rules if rules is not None else AlertRules()
        self.uri = uri
        self.suppressed = 0
        self._events: deque[AlertEvent] = deque()
        self._last_sent: dict[str, float] = {}
        self._registrations: deque[tuple[float, int]] = deque()
        # failure window: one bucket per second, [second, calls, failures]
        self._buckets: deque[list[int]] = deque()
        self._calls = 0
        self._failures = 0
        self._failing = False

    # -- input ---------------------------------------------------------------

    def observe_registrations(self, count: int, now: float) -> None:
        """The number of registered contacts at ``now``."""
        samples = self._registrations
        samples.append((now, count))
        horizon = now - self.rules.registration_window
        while samples and samples[0][0] < horizon:
            samples.popleft()
        peak = max(value for _, value in samples)
        if peak < self.rules.registration_min:
            return
        if (peak - count) / peak > self.rules.registration_drop:
            event = RegistrationsDropped(peak, count, self.rules.registration_window, self.uri)
            if self._emit(event, now):
                samples.clear()
                samples.append((now, count))

    def record_call(self, failed: bool, now: float) -> None:
        """One finished call; ``failed`` says whether it counts as a failure."""
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            bucket = buckets[-1]
        else:
            bucket = [second, 0, 0]
            buckets.append(bucket)
        bucket[1] += 1
        self._calls += 1
        if failed:
            bucket[2] += 1
            self._failures += 1
        self._check_failures(now)

    def record_cdr(self, disposition: str, now: float) -> None:
        """One CDR: any disposition but ``ANSWERED`` is a failure."""
        self.record_call(disposition.strip().upper() != "ANSWERED", now)

    def record_status(self, status: int, now: float) -> None:
        """One final SIP status of a call attempt: a 5xx is a failure."""
        self.record_call(500 <= status < 600, now)

    def handle_timer(self, now: float) -> None:
        """Slide the failure window to ``now`` (call every few seconds)."""
        self._check_failures(now)

    # -- output --------------------------------------------------------------

    def next_event(self) -> AlertEvent | None:
        """The next alert to send, or None."""
        return self._events.popleft() if self._events else None

    @property
    def failure_ratio(self) -> float:
        """Failed / all calls in the current window (0 when there were none)."""
        return self._failures / self._calls if self._calls else 0.0

    # -- rules ---------------------------------------------------------------

    def _slide(self, now: float) -> None:
        horizon = now - self.rules.failure_window
        buckets = self._buckets
        while buckets and buckets[0][0] + 1 <= horizon:
            _, calls, failures = buckets.popleft()
            self._calls -= calls
            self._failures -= failures

    def _check_failures(self, now: float) -> None:
        self._slide(now)
        rules = self.rules
        calls, failures = self._calls, self._failures
        if calls < rules.failure_min_calls:
            return
        ratio = failures / calls
        args = (ratio, failures, calls, rules.failure_window, rules.failure_ratio, self.uri)
        if not self._failing:
            if ratio >= rules.failure_ratio and self._emit(FailureRatioHigh(*args), now):
                self._failing = True
        elif ratio < rules.failure_ratio - rules.failure_hysteresis and self._emit(
            FailureRatioNormal(*args), now
        ):
            self._failing = False

    def _emit(self, event: AlertEvent, now: float) -> bool:
        last = self._last_sent.get(event.kind)
        if last is not None and now - last < self.rules.min_interval:
            self.suppressed += 1
            return False
        self._last_sent[event.kind] = now
        self._events.append(event)
        return True
