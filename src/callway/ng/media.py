"""What the ng engine needs from a media relay, as interfaces (no sockets here).

One relayed stream (one ``m=`` line of a call) has two legs: leg ``"a"``
faces the party that sent the first offer, leg ``"b"`` the party that
answered it.  Each leg owns an RTP/RTCP port pair at the relay: the port of
leg ``b`` is written into the offer passed to B, the port of leg ``a`` into
the answer passed back to A, and each leg sends to its party's address taken
from that party's SDP.  The asyncio shell implements these interfaces over
:class:`callway.media.relay.RelaySession`; the unit tests with fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "LEGS",
    "LegCounters",
    "LegName",
    "MediaFactory",
    "MediaLeg",
    "MediaStream",
    "OutOfPortsError",
    "other_leg",
]

LegName = Literal["a", "b"]
LEGS: tuple[LegName, LegName] = ("a", "b")


def other_leg(name: LegName) -> LegName:
    """The leg on the other side of the relay."""
    return "b" if name == "a" else "a"


class OutOfPortsError(RuntimeError):
    """No port pair is left for a new stream (rtpengine's "Ran out of ports")."""


@dataclass(frozen=True, slots=True)
class LegCounters:
    """Traffic of one leg: ``*_in`` came from its party, ``*_out`` went to it."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    rtcp_packets_in: int = 0
    rtcp_packets_out: int = 0
    errors: int = 0
    last_packet: float | None = None  # on the engine's clock; None before the first
    remote: tuple[str, int] | None = None  # where the leg sends now (signalled or latched)


class MediaLeg(Protocol):
    """One leg's ports at the relay and where its party is."""

    @property
    def local_port(self) -> int:
        """The relay's RTP port for this leg (RTCP is the next one, RFC 3550 §11)."""
        ...

    def set_remote(self, rtp: tuple[str, int] | None, rtcp: tuple[str, int] | None = None) -> None:
        """Send this leg's media to ``rtp``/``rtcp`` (None: nowhere until a source latches)."""
        ...


class MediaStream(Protocol):
    """Two legs relaying one stream; closing it frees both port pairs."""

    def leg(self, name: LegName) -> MediaLeg:
        """Leg ``"a"`` or ``"b"``."""
        ...

    def counters(self, name: LegName) -> LegCounters:
        """A snapshot of one leg's traffic."""
        ...

    def close(self) -> None:
        """Stop relaying and free the ports (idempotent)."""
        ...


# Opens a stream (allocating both legs' ports); raises OutOfPortsError.
MediaFactory = Callable[[], MediaStream]
