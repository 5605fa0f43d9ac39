"""The SDP data model (RFC 8866, formerly RFC 4566).

A session holds the origin (``o=``), name (``s=``), optional connection
(``c=``), attributes (``a=``) in their order, every other line (``i= u= e=
p= b= t= r= z= k=`` and unknown types) in its order, and the media
descriptions (``m=`` sections, RFC 8866 §5.14).  Attributes are kept as
written: the accessors below parse the ones callway uses (``rtpmap``,
``fmtp``, ``ptime``, ``maxptime``, the direction, ``rtcp``, ``rtcp-mux``,
``crypto``, ``candidate``), so formatting writes back exactly what was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from callway.sdp.errors import SdpError

__all__ = [
    "STATIC_RTPMAPS",
    "Attribute",
    "Connection",
    "Direction",
    "Line",
    "MediaDescription",
    "Origin",
    "RtcpAttribute",
    "RtpMap",
    "SessionDescription",
]


class Direction(StrEnum):
    """Media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """The side that wrote this attribute sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """The side that wrote this attribute receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> Direction:
        """The direction with the given send and receive capabilities."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the peer (sendonly <-> recvonly)."""
        return Direction.from_flags(self.receives, self.sends)


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (RFC 8866 §5.2)."""

    username: str
    session_id: str
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/ttl][/count]`` (RFC 8866 §5.7)."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"
    suffix: str = ""  # multicast "/ttl/count", kept as written

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4`` or ``IN IP6`` for a literal address."""
        return cls(address, addrtype="IP6" if ":" in address else "IP4")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}{self.suffix}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 §6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        """Parse the attribute value."""
        try:
            pt_text, spec = value.split(None, 1)
            parts = spec.strip().split("/")
            channels = int(parts[2]) if len(parts) > 2 else None
            rtpmap = cls(int(pt_text), parts[0], int(parts[1]), channels)
        except (ValueError, IndexError):
            raise SdpError(f"bad rtpmap {value!r}") from None
        if not 0 <= rtpmap.payload_type <= 127:
            raise SdpError(f"rtpmap payload type {rtpmap.payload_type} outside 0-127")
        return rtpmap

    def matches(self, encoding: str, clock_rate: int, channels: int = 1) -> bool:
        """Same format: encoding names compare case-insensitively (RFC 4855 §3)."""
        return (
            self.encoding.lower() == encoding.lower()
            and self.clock_rate == clock_rate
            and (self.channels or 1) == channels
        )

    def __str__(self) -> str:
        channels = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{channels}"


_RTPMAP_CACHE: dict[str, RtpMap] = {}
_RTPMAP_CACHE_SIZE = 1024


def parse_rtpmap(value: str) -> RtpMap:
    """:meth:`RtpMap.parse`, remembering the values seen (phones repeat theirs on every call)."""
    rtpmap = _RTPMAP_CACHE.get(value)
    if rtpmap is None:
        rtpmap = RtpMap.parse(value)
        if len(_RTPMAP_CACHE) < _RTPMAP_CACHE_SIZE:
            _RTPMAP_CACHE[value] = rtpmap
    return rtpmap


# RFC 3551 table 4: static audio payload types usable without an rtpmap.
STATIC_RTPMAPS = {
    pt: RtpMap(pt, name, rate)
    for pt, name, rate in (
        (0, "PCMU", 8000),
        (3, "GSM", 8000),
        (4, "G723", 8000),
        (8, "PCMA", 8000),
        (9, "G722", 8000),
        (13, "CN", 8000),
        (18, "G729", 8000),
    )
}


@dataclass(frozen=True, slots=True)
class RtcpAttribute:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    port: int
    connection: Connection | None = None

    @classmethod
    def parse(cls, value: str) -> RtcpAttribute:
        """Parse the attribute value."""
        parts = value.split()
        try:
            port = int(parts[0])
        except (ValueError, IndexError):
            raise SdpError(f"bad rtcp attribute {value!r}") from None
        if not 0 <= port <= 65535:
            raise SdpError(f"rtcp port {port} outside 0-65535")
        if len(parts) == 4:
            return cls(port, Connection(parts[3], parts[1], parts[2]))
        if len(parts) != 1:
            raise SdpError(f"bad rtcp attribute {value!r}")
        return cls(port)

    def __str__(self) -> str:
        return f"{self.port} {self.connection}" if self.connection else str(self.port)


@dataclass(slots=True)
class Attribute:
    """``a=<name>[:<value>]`` (RFC 8866 §5.13); ``value`` None for a property attribute."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(slots=True)
class Line:
    """Any other ``<type>=<value>`` line, kept as written."""

    type: str
    value: str


class _Attributes:
    """Accessors shared by the session and media levels."""

    __slots__ = ()
    attributes: list[Attribute]

    def get(self, name: str) -> str | None:
        """Value of the first ``name`` attribute ("" for a property attribute), or None."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value if attribute.value is not None else ""
        return None

    def get_all(self, name: str) -> list[str]:
        """Values of every ``name`` attribute, in order."""
        return [a.value or "" for a in self.attributes if a.name == name]

    def has(self, name: str) -> bool:
        """Whether a ``name`` attribute is present."""
        return any(attribute.name == name for attribute in self.attributes)

    def remove(self, name: str) -> None:
        """Drop every ``name`` attribute."""
        self.attributes[:] = [a for a in self.attributes if a.name != name]

    def set(self, name: str, value: str | None = None) -> None:
        """Replace the first ``name`` attribute in place (dropping others), or append it."""
        for index, attribute in enumerate(self.attributes):
            if attribute.name == name:
                self.attributes[index] = Attribute(name, value)
                self.attributes[index + 1 :] = [
                    a for a in self.attributes[index + 1 :] if a.name != name
                ]
                return
        self.attributes.append(Attribute(name, value))

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written at this level, if any (RFC 8866 §6.7)."""
        for attribute in self.attributes:
            if attribute.value is None and attribute.name in _DIRECTIONS:
                return Direction(attribute.name)
        return None

    def set_direction(self, direction: Direction) -> None:
        """Replace the direction attribute in place, or append one."""
        for index, attribute in enumerate(self.attributes):
            if attribute.value is None and attribute.name in _DIRECTIONS:
                self.attributes[index] = Attribute(direction.value)
                return
        self.attributes.append(Attribute(direction.value))


_DIRECTIONS = frozenset(d.value for d in Direction)


@dataclass(slots=True)
class MediaDescription(_Attributes):
    """One ``m=`` section (RFC 8866 §5.14) with its lines and attributes."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    lines: list[Line] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload types (RTP profiles, RFC 3551 §6)."""
        return [int(f) for f in self.formats if f.isascii() and f.isdigit()]

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """The ``rtpmap`` attributes by payload type."""
        maps: dict[int, RtpMap] = {}
        for attribute in self.attributes:
            if attribute.name == "rtpmap":
                rtpmap = parse_rtpmap(attribute.value or "")
                maps[rtpmap.payload_type] = rtpmap
        return maps

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The payload type's format: its rtpmap, else the static RFC 3551 one."""
        return self.rtpmaps.get(payload_type) or STATIC_RTPMAPS.get(payload_type)

    def fmtp(self, payload_type: int) -> str | None:
        """The ``fmtp`` parameters of a payload type (RFC 8866 §6.15)."""
        prefix = f"{payload_type} "
        for value in self.get_all("fmtp"):
            if value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (RFC 8866 §6.4)."""
        return _milliseconds(self.get("ptime"), "ptime")

    @property
    def maxptime(self) -> int | None:
        """``a=maxptime`` in milliseconds (RFC 8866 §6.5)."""
        return _milliseconds(self.get("maxptime"), "maxptime")

    @property
    def rtcp(self) -> RtcpAttribute | None:
        """``a=rtcp`` (RFC 3605)."""
        value = self.get("rtcp")
        return RtcpAttribute.parse(value) if value is not None else None

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` (RFC 5761 §5.1.1)."""
        return self.has("rtcp-mux")

    @property
    def crypto(self) -> list[str]:
        """``a=crypto`` values as written (RFC 4568 §9.1)."""
        return self.get_all("crypto")

    @property
    def candidates(self) -> list[str]:
        """``a=candidate`` values as written (RFC 8839 §5.1)."""
        return self.get_all("candidate")


def milliseconds(value: str | None, name: str) -> int | None:
    """A ``ptime``/``maxptime`` value in whole milliseconds (None when absent)."""
    return _milliseconds(value, name)


def _milliseconds(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return round(float(value))
    except (ValueError, OverflowError):  # "x", "nan"; "inf", "1e999"
        raise SdpError(f"bad {name} {value!r}") from None


@dataclass(slots=True)
class SessionDescription(_Attributes):
    """A whole SDP body (RFC 8866 §5)."""

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    lines: list[Line] = field(default_factory=lambda: [Line("t", "0 0")])
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    version: int = 0

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The media-level ``c=``, else the session-level one (RFC 8866 §5.7)."""
        return media.connection or self.connection

    def direction_for(self, media: MediaDescription) -> Direction:
        """The media direction, else the session one, else sendrecv (RFC 8866 §6.7)."""
        return media.direction or self.direction or Direction.SENDRECV
