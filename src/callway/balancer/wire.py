"""Byte-level views of SIP messages for the balancer's fast path (RFC 3261 §7).

A proxy relays most of a message untouched (§16.6): it adds a Via and a
Record-Route, decrements Max-Forwards and, on the way back, removes its own
Via (§16.7).  :func:`split_message` cuts a datagram into its header lines and
notes where the few headers a proxy reads are, so those edits are list
operations on lines of bytes; nothing else is parsed.  Whatever is unusual
(folded lines, several values on one Via line, compact forms that are not
known, a Content-Length that does not match the datagram) gives None, and the
caller hands the message to the full parser instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callway.core.address import Address
from callway.sip.errors import ParseError
from callway.sip.message import Request, parse_message

# Header names as they appear on the wire -> short keys (long and compact forms, §7.3.3).
_KEYS = {
    b"via": "via", b"v": "via", b"route": "route", b"record-route": "rr",
    b"max-forwards": "mf", b"call-id": "cid", b"i": "cid", b"cseq": "cseq",
    b"to": "to", b"t": "to", b"from": "from", b"f": "from",
    b"content-length": "cl", b"l": "cl", b"proxy-require": "preq",
}  # fmt: skip
_SINGLE = frozenset({"cid", "cseq", "to", "from", "cl", "mf"})
_NAME_CACHE: dict[bytes, str] = {}
_NAME_CACHE_MAX = 256
UDP_PROTOCOL = b"SIP/2.0/UDP"


@dataclass(slots=True)
class Wire:
    """One message as lines of bytes, with the positions of the headers a proxy needs.

    ``lines[0]`` is the start line; ``at`` maps a short key (``via``, ``route``,
    ``rr``, ``mf``, ``cid``, ``cseq``, ``to``, ``from``, ``cl``, ``preq``) to the
    indexes of its lines, in order.
    """

    lines: list[bytes]
    body: bytes
    at: dict[str, list[int]] = field(default_factory=dict)

    def value(self, key: str) -> bytes | None:
        """The value of the first line of ``key`` (stripped), None if absent."""
        where = self.at.get(key)
        if not where:
            return None
        return self.lines[where[0]].partition(b":")[2].strip()

    def set_value(self, index: int, value: bytes) -> None:
        """Replace the value of line ``index``, keeping its name."""
        line = self.lines[index]
        self.lines[index] = line[: line.index(b":") + 1] + b" " + value

    def delete(self, key: str) -> None:
        """Remove the first line of ``key``; the later lines move up."""
        index = self.at[key].pop(0)
        del self.lines[index]
        for where in self.at.values():
            for position, line in enumerate(where):
                if line > index:
                    where[position] = line - 1

    def to_bytes(self) -> bytes:
        """The message again, with the edits made."""
        return b"\r\n".join(self.lines) + b"\r\n\r\n" + self.body

    def request(self) -> Request:
        """The message parsed in full (ParseError if it is not a request)."""
        message = parse_message(self.to_bytes())
        if not isinstance(message, Request):
            raise ParseError("not a request")
        return message


def split_message(data: bytes) -> Wire | None:
    """Cut ``data`` into header lines (None when the full parser must look at it)."""
    end = data.find(b"\r\n\r\n")
    if end <= 0:
        return None
    lines = data[:end].split(b"\r\n")
    at: dict[str, list[int]] = {}
    cache = _NAME_CACHE
    index = 0
    for line in lines:
        if not index:
            index = 1
            continue
        name, colon, _ = line.partition(b":")
        key = cache.get(name) if colon else None  # a bare known name is no header
        if key is None:
            if not colon or line[:1] in (b" ", b"\t"):
                return None  # folded or broken: the full parser decides
            key = _KEYS.get(name.strip().lower(), "")
            if len(cache) < _NAME_CACHE_MAX:
                cache[name] = key
        if key:
            where = at.get(key)
            if where is None:
                at[key] = [index]
            elif key in _SINGLE:
                return None
            else:
                where.append(index)
        index += 1
    if "via" not in at or "cid" not in at or "cseq" not in at or "to" not in at:
        return None
    wire = Wire(lines, data[end + 4 :], at)
    length = wire.value("cl")
    if length is None or not length.isdigit() or int(length) != len(wire.body):
        return None
    return wire if "from" in at else None


@dataclass(slots=True)
class TopVia:
    """The top Via of a UDP request or response, split (§20.42, §18.2.1)."""

    host: str
    port: int  # 0 when absent
    params: list[bytes]  # "name" or "name=value", in order
    head: bytes  # "SIP/2.0/UDP host:port"
    values: dict[bytes, bytes]  # lower-case name -> value (b"" when it has none)
    rest: bytes = b""  # the other Via values of the same line (§7.3.1)
    branch: str = ""

    def line_value(self, first: bytes) -> bytes:
        """The Via line's value with ``first`` as its top value."""
        return first + b", " + self.rest if self.rest else first

    @property
    def sent_by(self) -> str:
        """host:port as the transaction key uses it."""
        return f"{self.host.lower()}:{self.port or 5060}"


def parse_top_via(line_value: bytes) -> TopVia | None:
    """The first Via value of a Via line, if UDP; None for anything else (TCP, odd hosts)."""
    if b'"' in line_value:
        return None  # a quoted parameter might hold a comma
    value, _, others = line_value.partition(b",")
    head, _, param_text = value.partition(b";")
    head = head.strip()
    protocol, _, hostport = head.partition(b" ")
    if protocol.upper() != UDP_PROTOCOL:
        return None
    hostport = hostport.strip()
    if hostport.startswith(b"["):
        close = hostport.find(b"]")
        host, after = hostport[1:close], hostport[close + 1 :]
        port_text = after[1:] if after.startswith(b":") else b""
    else:
        host, _, port_text = hostport.partition(b":")
    if not host or (port_text and not port_text.isdigit()):
        return None
    params = param_text.split(b";") if param_text else []
    values = {}
    for item in params:
        name, _, param_value = item.partition(b"=")
        values[name.strip().lower()] = param_value.strip()
    branch = values.get(b"branch")
    return TopVia(
        host.decode("latin-1"), int(port_text or 0), params, head, values, others.strip(),
        branch.decode("latin-1") if branch else "",
    )  # fmt: skip


def stamp_via(via: TopVia, source: Address) -> bytes | None:
    """§18.2.1 and RFC 3581 §4: the Via value with received/rport filled in.

    None when nothing changes (sent-by is the source and no empty rport).
    """
    needs_rport = via.values.get(b"rport") == b""
    if via.host == source.host and not needs_rport:
        return None
    out = [via.head]
    for item in via.params:
        key = item.partition(b"=")[0].strip().lower()
        if key == b"received":
            continue
        out.append(b"rport=%d" % source.port if key == b"rport" and needs_rport else item)
    out.append(b"received=" + source.host.encode())
    return b";".join(out)


def response_address(via: TopVia, source: Address) -> Address:
    """Where responses to a UDP request go once :func:`stamp_via` did its part.

    §18.2.2 and RFC 3581 §4: to ``received`` (the source when it differs from
    sent-by) at ``rport`` (the source port when asked for), else sent-by.
    """
    rport = via.values.get(b"rport")
    if rport == b"":
        return Address("udp", source.host, source.port, source.local)
    port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
    if via.host == source.host:
        received = via.values.get(b"received")
        host = received.decode("latin-1") if received else via.host
    else:
        host = source.host
    return Address("udp", host.strip("[]"), port, source.local)


def has_to_tag(to_value: bytes) -> bool:
    """True if a To (or From) value carries a tag parameter (§19.3)."""
    close = to_value.rfind(b">")
    params = to_value[close + 1 :] if close >= 0 else to_value
    return b"tag=" in params.replace(b" ", b"").lower()


def first_route(value: bytes) -> tuple[bytes, bytes] | None:
    """Split a Route line's value into its first entry and the rest (``b""`` if none).

    Only the ``<uri>;params`` form is handled (None otherwise).
    """
    if not value.startswith(b"<"):
        return None
    close = value.find(b">")
    if close < 0:
        return None
    comma = value.find(b",", close)
    if comma < 0:
        return value, b""
    return value[:comma].rstrip(), value[comma + 1 :].strip()


def route_uri(entry: bytes) -> str:
    """The URI text inside a ``<uri>;params`` entry."""
    return entry[1 : entry.find(b">")].decode("utf-8", "surrogateescape")
