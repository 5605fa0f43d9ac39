"""RFC 4028 session timers for the caller's leg: negotiation and scheduling, sans I/O.

The endpoint's ``timers`` option follows chan_pjsip: ``no`` ignores the
extension, ``yes`` uses it when the caller supports it, ``required`` turns
away callers that do not (421 with ``Require: timer``), ``always`` uses it
even then, with the PBX as refresher.  ``timers_min_se`` is our Min-SE
(smaller requests get 422, §8.1) and ``timers_sess_expires`` the interval we
ask for.

:class:`SessionTimer` runs a negotiated timer: the refresher refreshes at half
the interval (§7.2, §10), the other side hangs up when no refresh came
``min(32, interval / 3)`` seconds before expiry (§10).  It never reads the
clock: callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from callway.pbx.model import Endpoint
from callway.sip.message import Request

MIN_SE_FLOOR = 90  # RFC 4028 §4: Min-SE is never below 90 seconds


class TimerAction(Enum):
    """What a due session timer asks for."""

    REFRESH = "refresh"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome for one INVITE: a rejection, or the timer to run (or none)."""

    status: int = 0  # 421 or 422 to reject the INVITE; 0 to go on
    interval: int = 0  # 0: no session timer for this call
    refresher: str = ""  # "uac" or "uas"
    caller_supports: bool = False
    min_se: int = MIN_SE_FLOOR

    @property
    def active(self) -> bool:
        """A session timer runs for the call."""
        return self.interval > 0

    def reject_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers of a 421 (§6) or 422 (§8.1) response."""
        if self.status == 422:
            return (("Min-SE", str(self.min_se)),)
        if self.status == 421:
            return (("Require", "timer"),)
        return ()

    def answer_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers of the 2xx (§9): Session-Expires, and Require: timer if the caller knows it."""
        if not self.active:
            return ()
        headers = [("Session-Expires", f"{self.interval};refresher={self.refresher}")]
        if self.caller_supports:
            headers.append(("Require", "timer"))
        return tuple(headers)


def _tokens(request: Request, name: str) -> set[str]:
    return {token.strip().lower() for value in request.get_all(name) for token in value.split(",")}


def _delta(value: str | None) -> tuple[int | None, str]:
    """``Session-Expires: delta[;refresher=x]`` (§4) -> (delta, refresher)."""
    if not value:
        return None, ""
    head, *params = value.split(";")
    refresher = ""
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "refresher":
            refresher = val.strip().lower()
    try:
        return int(head.strip()), refresher if refresher in ("uac", "uas") else ""
    except ValueError:
        return None, ""


def negotiate(endpoint: Endpoint, request: Request) -> Negotiated:
    """Our answer to an initial INVITE's session timer request (RFC 4028 §9)."""
    mode = (endpoint.timers or "yes").lower()
    min_se = max(MIN_SE_FLOOR, endpoint.timers_min_se)
    if mode in ("no", "false", "0"):
        return Negotiated(min_se=min_se)
    supported = "timer" in _tokens(request, "Supported") | _tokens(request, "Require")
    requested, refresher = _delta(request.get("Session-Expires"))
    if requested is not None and requested < min_se:
        return Negotiated(status=422, min_se=min_se)
    if not supported and requested is None:
        if mode == "required":
            return Negotiated(status=421, min_se=min_se)
        if mode != "always":
            return Negotiated(min_se=min_se)
    peer_min, _ = _delta(request.get("Min-SE"))
    interval = max(endpoint.timers_sess_expires, min_se, peer_min or 0)
    if requested is not None:
        interval = max(min(requested, interval), min_se)
    if not supported:
        refresher = "uas"  # the caller cannot refresh: we do (§9)
    return Negotiated(
        interval=interval,
        refresher=refresher or "uac",
        caller_supports=supported,
        min_se=min_se,
    )


class SessionTimer:
    """A running session timer of one dialog (RFC 4028 §10)."""

    def __init__(self, interval: float, *, we_refresh: bool, now: float) -> None:
        self.interval = interval
        self.we_refresh = we_refresh
        self.last_refresh = now
        self.expired = False

    def refreshed(self, now: float, interval: float | None = None) -> None:
        """A refresh succeeded (ours got a 2xx, or we answered the peer's 2xx)."""
        self.last_refresh = now
        if interval:
            self.interval = interval

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is next due (None once expired)."""
        if self.expired:
            return None
        if self.we_refresh:
            return self.last_refresh + self.interval / 2
        return self.last_refresh + self.interval - min(32.0, self.interval / 3)

    def handle_timer(self, now: float) -> TimerAction | None:
        """REFRESH: send a re-INVITE/UPDATE now; EXPIRE: send BYE (§10)."""
        due = self.get_timer()
        if due is None or now < due:
            return None
        if self.we_refresh:
            self.last_refresh = now  # the next refresh is half an interval on
            return TimerAction.REFRESH
        self.expired = True
        return TimerAction.EXPIRE
