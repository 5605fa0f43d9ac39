"""Requests, addresses and a UAC/UAS pair for the transaction tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callway.core.address import Address
from callway.sip.message import Request, Response, make_response, parse_message
from callway.sip.transaction import (
    ResponseReceived,
    TransactionConfig,
    TransactionEvent,
    TransactionLayer,
    new_branch,
)
from tests.helpers.clock import ManualClock
from tests.helpers.network import InMemoryNetwork

T1 = 0.5
UAC_HOST = "192.0.2.10"
UAS_HOST = "192.0.2.20"


def uac(transport: str = "udp") -> Address:
    return Address(transport, UAC_HOST, 5060)


def uas(transport: str = "udp") -> Address:
    return Address(transport, UAS_HOST, 5060)


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = None,
    transport: str = "UDP",
    sent_by: str = f"{UAC_HOST}:5060",
    cseq: int = 1,
    call_id: str = "a84b4c76e66710@pc33.example.com",
    to_tag: str | None = None,
    routes: tuple[str, ...] = (),
    uri: str = "sip:bob@example.com",
) -> Request:
    """A request as a UAC sends it (RFC 3261 §8.1.1), with a fresh branch by default."""
    branch = new_branch() if branch is None else branch
    via_params = f";branch={branch}" if branch else ""
    to = "Bob <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = [
        ("Via", f"SIP/2.0/{transport} {sent_by}{via_params}"),
        ("Max-Forwards", "70"),
        *(("Route", route) for route in routes),
        ("To", to),
        ("From", "Alice <sip:alice@example.com>;tag=1928301774"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:alice@{UAC_HOST}>"),
    ]
    return Request(method, uri, headers)


def respond(request: Request, status: int, to_tag: str = "a6c85cf") -> Response:
    """The UAS's response (§8.2.6)."""
    return make_response(request, status, to_tag=to_tag)


def drain(layer: TransactionLayer) -> list[TransactionEvent]:
    """Every pending event."""
    events: list[TransactionEvent] = []
    while (event := layer.next_event()) is not None:
        events.append(event)
    return events


@dataclass
class Pair:
    """A UAC layer and a UAS layer on one in-memory network, one hand-stepped clock."""

    transport: str = "udp"
    config: TransactionConfig = field(default_factory=TransactionConfig)
    clock: ManualClock = field(default_factory=ManualClock)
    net: InMemoryNetwork = field(default_factory=InMemoryNetwork)

    def __post_init__(self) -> None:
        self.client = TransactionLayer(self.config)
        self.server = TransactionLayer(self.config)
        self.client_addr = uac(self.transport)
        self.server_addr = uas(self.transport)
        self.net.attach(self.client_addr, self.client)
        self.net.attach(self.server_addr, self.server)

    @property
    def now(self) -> float:
        return self.clock.now

    def flush(self) -> None:
        self.net.flush(self.now)

    def request(self, method: str = "INVITE", **kwargs: Any) -> Request:
        return make_request(method, transport=self.transport.upper(), **kwargs)

    def next_deadline(self) -> float | None:
        deadlines = [t for t in (self.client.get_timer(), self.server.get_timer()) if t]
        return min(deadlines) if deadlines else None

    def run_until(self, when: float) -> None:
        """Fire timers in order up to ``when``, delivering after each, then set the clock."""
        while (deadline := self.next_deadline()) is not None and deadline <= when:
            self.clock.now = deadline
            self.client.handle_timer(deadline)
            self.server.handle_timer(deadline)
            self.flush()
        self.clock.now = max(self.clock.now, when)
        self.flush()

    def advance(self, seconds: float) -> None:
        self.run_until(self.now + seconds)


@dataclass
class Tick:
    """What one timer firing produced."""

    at: float
    sent: list[Request | Response]
    events: list[TransactionEvent]


def run_timers(layer: TransactionLayer, clock: ManualClock, until: float) -> list[Tick]:
    """Fire ``layer``'s timers in order up to ``until``; times are relative to the clock's start."""
    start = clock.now
    ticks = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        clock.now = deadline
        layer.handle_timer(deadline)
        sent = [message for message, _ in layer.messages_to_send()]
        ticks.append(Tick(deadline - start, sent, drain(layer)))
    clock.now = max(clock.now, until)
    return ticks


def responses(events: list[TransactionEvent]) -> list[Response]:
    """The responses of ResponseReceived events (asserting that all events are those)."""
    out = []
    for event in events:
        assert isinstance(event, ResponseReceived), event
        out.append(event.response)
    return out


def statuses(events: list[TransactionEvent]) -> list[int]:
    """The status codes of ResponseReceived events."""
    return [response.status for response in responses(events)]


def wire_copy(request: Request) -> Request:
    """The request as a retransmission arrives: same bytes, a new object."""
    copy = parse_message(request.to_bytes())
    assert isinstance(copy, Request)
    return copy
