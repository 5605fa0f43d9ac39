"""What the admin API reports: plain, JSON-ready snapshots of a node.

A backend (:class:`~callway.admin.backend.AdminBackend`) builds these from the
live objects of its application; the server turns them into JSON with
:func:`to_json` and feeds them to the metrics.  They hold no references to the
live objects, so a snapshot can be kept, compared and sent after the call ended.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered contact of an AOR."""

    aor: str
    uri: str
    expires_at: float
    expires_in: int
    source: str  # transport:host:port the REGISTER came from
    user_agent: str = ""
    registered_at: float | None = None


@dataclass(frozen=True, slots=True)
class Quality:
    """Reception quality of one RTP stream: RFC 3550 loss/jitter and the E-model.

    Every value is None when the node has not measured it.
    """

    loss: float | None = None  # fraction of packets lost, 0..1
    jitter_ms: float | None = None  # RFC 3550 interarrival jitter
    r_factor: float | None = None
    mos: float | None = None


@dataclass(frozen=True, slots=True)
class Leg:
    """One media leg of a call (the PBX's ports towards one phone) and its counters."""

    name: str
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    remote: str | None = None  # where the leg's RTP goes ("host:port")
    latched: bool = False
    last_packet_age: float | None = None  # seconds since the last RTP packet arrived
    quality: Quality = field(default_factory=Quality)


@dataclass(frozen=True, slots=True)
class Call:
    """One active call (an Asterisk channel) with its legs."""

    id: str
    name: str
    caller: str
    exten: str
    peer: str
    state: str  # "ringing" or "up"
    started: float
    answered_at: float | None
    legs: tuple[Leg, ...] = ()

    @property
    def mos(self) -> float | None:
        """The worst MOS of the call's legs (None when no leg was measured)."""
        values = [leg.quality.mos for leg in self.legs if leg.quality.mos is not None]
        return min(values) if values else None


@dataclass(frozen=True, slots=True)
class Cdr:
    """One finished call (Asterisk's CDR columns)."""

    uniqueid: str
    src: str
    dst: str
    start: float
    answer: float | None
    end: float
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED
    duration: int
    billsec: int
    clid: str = ""  # "name" <number>
    channel: str = ""  # the caller's channel, PJSIP/8005-00000001
    dstchannel: str = ""  # the answering callee's channel
    lastapp: str = ""  # the last dialplan application and its arguments
    lastdata: str = ""
    dcontext: str = ""  # the context the call started in
    accountcode: str = ""


@dataclass(frozen=True, slots=True)
class Destination:
    """One dispatcher destination with its live state (Kamailio's ``dispatcher.list``)."""

    setid: int
    uri: str
    state: str  # two letters: AP, IP, DX, TX ...
    usable: bool
    priority: int = 0
    probes_sent: int = 0
    probes_ok: int = 0
    probes_failed: int = 0
    request_failures: int = 0
    last_status: int | None = None
    last_change: float | None = None


@dataclass(frozen=True, slots=True)
class HeldCallback:
    """A caller held until an offline user comes online (hold-and-notify)."""

    id: str
    caller: str
    callee: str
    since: float
    state: str  # waiting, connected, timeout, dropped
    mode: str = "hold"  # hold or conference
    room: str | None = None  # conference mode: the waiting room
    number: str | None = None  # conference mode: dial it to join the room
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Room:
    """A conference room and who is in it."""

    name: str
    members: tuple[str, ...]
    since: float
    muted: tuple[str, ...] = ()  # the members who are muted
    number: str | None = None  # the join number of a callback room


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who answers: role, version, start time and monotonic event counters."""

    role: str  # "pbx" or "balancer"
    version: str
    started: float
    counters: dict[str, int] = field(default_factory=dict)


def to_json(value: Any) -> Any:
    """A snapshot (or list of them) as JSON-ready dicts; calls carry their MOS."""
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Call):
        out = dataclasses.asdict(value)
        out["mos"] = value.mos
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
