"""Parse and format SDP text (RFC 8866 §5, §9 grammar).

Parsing is tolerant where real phones are sloppy (LF line ends, a missing
``t=``, decimal ``ptime``) and strict where a wrong guess would misroute
media (the ``v=``, ``o=``, ``c=``, ``m=`` fields, and the parsed attributes:
``rtpmap``, ``fmtp``, ``ptime``, ``maxptime``, ``rtcp``).  Formatting writes
the lines in the grammar's order, each section's other lines and attributes
in the order they were read, so ``format_sdp(parse_sdp(x)) == x`` for any
well-formed ``x`` with CRLF line ends.
"""

from __future__ import annotations

from callway.sdp.errors import SdpError
from callway.sdp.model import (
    Attribute,
    Connection,
    Line,
    MediaDescription,
    Origin,
    RtcpAttribute,
    SessionDescription,
    milliseconds,
    parse_rtpmap,
)

__all__ = ["format_sdp", "parse_sdp"]

# RFC 8866 §9: the order of lines within the session and media sections.
# "t" and "r" share a rank so repeated time descriptions keep their pairing.
_SESSION_RANK = {"i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8, "t": 9, "r": 9, "z": 11, "k": 12}
_MEDIA_RANK = {"i": 0, "c": 1, "b": 2, "k": 3}
_UNKNOWN_RANK = 12.5


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse a session description, raising :class:`SdpError` when it is not one."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"not UTF-8 at byte {exc.start}") from None
    else:
        text = data
    lines = [(n, line.removesuffix("\r")) for n, line in enumerate(text.split("\n"), 1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines:
        raise SdpError("empty session description")
    return _Parser(lines).run()


class _Parser:
    def __init__(self, lines: list[tuple[int, str]]) -> None:
        self.lines = lines
        self.origin: Origin | None = None
        self.name: str | None = None
        self.session = SessionDescription(Origin("-", "0", 0, "0.0.0.0"), lines=[])

    def run(self) -> SessionDescription:
        number, first = self.lines[0]
        if first != "v=0":
            raise SdpError(f"expected v=0 first, got {first[:20]!r}", number)
        media: MediaDescription | None = None
        for number, line in self.lines[1:]:
            kind, value = _split(line, number)
            try:
                if kind == "m":
                    media = _media(value)
                    self.session.media.append(media)
                elif media is None:
                    self._session_line(kind, value)
                else:
                    _media_line(media, kind, value)
            except SdpError as exc:
                raise SdpError(exc.reason, number) from None
        if self.origin is None or self.name is None:
            raise SdpError("missing o= or s= line")
        self.session.origin = self.origin
        self.session.name = self.name
        return self.session

    def _session_line(self, kind: str, value: str) -> None:
        if kind == "o":
            if self.origin is not None:
                raise SdpError("second o= line")
            self.origin = _origin(value)
        elif kind == "s":
            if self.name is not None:
                raise SdpError("second s= line")
            self.name = value
        elif kind == "v":
            raise SdpError("second v= line")
        elif kind == "c" and self.session.connection is None:
            self.session.connection = _connection(value)
        elif kind == "a":
            self.session.attributes.append(_attribute(value))
        else:
            self.session.lines.append(Line(kind, value))


def _split(line: str, number: int) -> tuple[str, str]:
    if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
        raise SdpError(f"not a <type>=<value> line: {line[:40]!r}", number)
    return line[0], line[2:]


def _origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"o= needs 6 fields, got {len(parts)}")
    username, session_id, version, nettype, addrtype, address = parts
    try:
        session_version = int(version)
    except ValueError:
        raise SdpError(f"bad session version {version!r}") from None
    return Origin(username, session_id, session_version, address, nettype, addrtype)


def _connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"c= needs 3 fields, got {len(parts)}")
    nettype, addrtype, address = parts
    host, slash, suffix = address.partition("/")
    if not host:
        raise SdpError("c= has an empty address")
    return Connection(host, nettype, addrtype, slash + suffix)


def _media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"m= needs media, port and proto, got {value!r}")
    media, port_text, proto, *formats = parts
    port_part, slash, count_part = port_text.partition("/")
    try:
        port = int(port_part)
        port_count = int(count_part) if slash else None
    except ValueError:
        raise SdpError(f"bad m= port {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise SdpError(f"m= port {port} outside 0-65535")
    return MediaDescription(media, port, proto, formats, port_count)


def _media_line(media: MediaDescription, kind: str, value: str) -> None:
    if kind == "a":
        media.attributes.append(_attribute(value))
    elif kind == "c" and media.connection is None:
        media.connection = _connection(value)
    else:
        media.lines.append(Line(kind, value))


def _attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    attribute = Attribute(name, rest if colon else None)
    _check(attribute)
    return attribute


def _check(attribute: Attribute) -> None:
    """Parse the attributes callway reads, so a bad one fails at parse time."""
    name, value = attribute.name, attribute.value or ""
    if name == "rtpmap":
        parse_rtpmap(value)
    elif name == "fmtp" and not value.split(" ", 1)[0].isdigit():
        raise SdpError(f"bad fmtp {attribute.value!r}")
    elif name in ("ptime", "maxptime"):
        milliseconds(value, name)
    elif name == "rtcp":
        RtcpAttribute.parse(value)


def format_sdp(desc: SessionDescription) -> bytes:
    """Serialize a session description with CRLF line ends (RFC 8866 §5)."""
    out = [f"v={desc.version}", f"o={desc.origin}", f"s={desc.name}"]
    session_lines = [(_SESSION_RANK.get(line.type, _UNKNOWN_RANK), line) for line in desc.lines]
    if desc.connection is not None:
        session_lines.insert(0, (_SESSION_RANK["c"], Line("c", str(desc.connection))))
    out += _ordered(session_lines)
    out += [f"a={attribute}" for attribute in desc.attributes]
    for media in desc.media:
        port = (
            f"{media.port}/{media.port_count}" if media.port_count is not None else str(media.port)
        )
        out.append(" ".join(["m=" + media.media, port, media.proto, *media.formats]))
        media_lines = [(_MEDIA_RANK.get(line.type, _UNKNOWN_RANK), line) for line in media.lines]
        if media.connection is not None:
            media_lines.insert(0, (_MEDIA_RANK["c"], Line("c", str(media.connection))))
        out += _ordered(media_lines)
        out += [f"a={attribute}" for attribute in media.attributes]
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def _ordered(ranked: list[tuple[float, Line]]) -> list[str]:
    ranked.sort(key=lambda item: item[0])  # stable: equal ranks keep their order
    return [f"{line.type}={line.value}" for _rank, line in ranked]
