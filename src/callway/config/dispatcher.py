"""Kamailio's ``dispatcher.list``: text in, destination sets out.

One destination per line::

    # setid destination [flags [priority [attrs]]]
    1 sip:192.168.0.1 0 1 weight=50
    2 sip:127.0.0.1:5082;transport=tcp 0 5 duid=abc;socket=udp:192.168.0.125:5060;pipe=p10

* ``setid`` is a non-negative integer; ``destination`` a ``sip:``/``sips:`` URI;
* ``flags`` a decimal or ``0x`` hex bit mask of :class:`DestState` bits
  (1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS, 32 no ping);
* ``priority`` an integer, higher first (it orders the set);
* ``attrs`` ``name=value`` pairs separated by ``;``.  Kamailio's special
  names are checked: ``weight`` and ``rweight`` 0-100, ``maxload`` >= 0,
  ``duid``, ``socket`` (``proto:host[:port]``), ``ping_from`` (a SIP URI).
  Other names are kept for the operator.

``#`` starts a comment at the beginning of a line or of a field; blank lines
are ignored.  Where Kamailio logs a bad value and carries on, callway refuses
the whole file with :class:`ConfigError` naming the line, so a reload can keep
the old list in force.  Duplicate destinations within one set are refused
(their live states could not be told apart).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from callway.balancer.model import STATE_BITS, Destination, DestState, DispatcherSet
from callway.config.errors import ConfigError
from callway.sip.errors import ParseError
from callway.sip.uri import SipURI, parse_uri

__all__ = ["load_dispatcher_list", "parse_attrs", "parse_dispatcher_list"]

_SOCKET_PROTOS = frozenset({"udp", "tcp", "tls", "sctp", "ws", "wss"})
_PERCENT_ATTRS = ("weight", "rweight")

#: Builds the ConfigError for the line being parsed.
_FailFn = Callable[[str], ConfigError]


def load_dispatcher_list(path: str | Path) -> dict[int, DispatcherSet]:
    """Read and parse a ``dispatcher.list`` file (UTF-8)."""
    file = Path(path)
    return parse_dispatcher_list(file.read_text(encoding="utf-8"), filename=str(file))


def parse_dispatcher_list(text: str, filename: str = "dispatcher.list") -> dict[int, DispatcherSet]:
    """Parse ``dispatcher.list`` text into sets keyed by set id.

    Each set's destinations are ordered by priority, highest first, file
    order among equals.  Raises :class:`ConfigError` on the first bad line.
    """
    grouped: dict[int, list[Destination]] = {}
    seen: dict[tuple[int, str], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = _fields(raw)
        if not fields:
            continue
        setid, dest = _parse_line(fields, filename, number)
        key = (setid, dest.uri.casefold())
        if key in seen:
            raise ConfigError(
                filename,
                number,
                f"destination {dest.uri} is already in set {setid} (line {seen[key]})",
            )
        seen[key] = number
        grouped.setdefault(setid, []).append(dest)
    return {setid: DispatcherSet.ordered(setid, dests) for setid, dests in grouped.items()}


def parse_attrs(text: str) -> dict[str, str]:
    """Split ``a=1;b=2;flag`` into ``{"a": "1", "b": "2", "flag": ""}`` (names lower-cased).

    Raises ``ValueError`` for an empty name.
    """
    result: dict[str, str] = {}
    body = text[:-1] if text.endswith(";") else text
    if not body:
        return result
    for item in body.split(";"):
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if not name:
            raise ValueError(f"attribute without a name in {text!r}")
        result[name] = value.strip()
    return result


def _fields(raw: str) -> list[str]:
    """Whitespace-separated fields of a line, without a trailing ``#`` comment."""
    fields: list[str] = []
    for token in raw.split():
        if token.startswith("#"):
            break
        fields.append(token)
    return fields


def _parse_line(fields: list[str], filename: str, line: int) -> tuple[int, Destination]:
    def fail(problem: str) -> ConfigError:
        return ConfigError(filename, line, problem)

    if len(fields) < 2:
        raise fail(f"expected 'setid destination [flags [priority [attrs]]]', got {fields[0]!r}")
    if len(fields) > 5:
        raise fail(f"unexpected text after the attributes: {' '.join(fields[5:])!r}")
    setid_text, uri_text = fields[0], fields[1]
    if not (setid_text.isascii() and setid_text.isdigit()):
        raise fail(f"set id must be a non-negative integer, got {setid_text!r}")
    sip_uri = _parse_destination_uri(uri_text, fail)
    flags = _parse_flags(fields[2], fail) if len(fields) > 2 else DestState.ACTIVE
    priority = _parse_int(fields[3], "priority", fail) if len(fields) > 3 else 0
    attrs = fields[4] if len(fields) > 4 else ""
    try:
        attributes = parse_attrs(attrs)
    except ValueError as exc:
        raise fail(str(exc)) from None
    numbers = {name: _attr_int(attributes, name, 0, 100, fail) for name in _PERCENT_ATTRS}
    maxload = _attr_int(attributes, "maxload", 0, None, fail)
    socket = attributes.get("socket", "")
    if socket:
        _check_socket(socket, fail)
    ping_from = attributes.get("ping_from", "")
    if ping_from:
        _parse_destination_uri(ping_from, fail, what="ping_from")
    dest = Destination(
        uri=uri_text,
        sip_uri=sip_uri,
        flags=flags,
        priority=priority,
        attrs=attrs,
        attributes=attributes,
        weight=numbers["weight"],
        rweight=numbers["rweight"],
        duid=attributes.get("duid", ""),
        maxload=maxload,
        socket=socket,
        ping_from=ping_from,
        line=line,
    )
    return int(setid_text), dest


def _parse_destination_uri(text: str, fail: _FailFn, what: str = "destination") -> SipURI:
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        raise fail(f"{what} {text!r} is not a valid SIP URI: {exc}") from None
    if not isinstance(uri, SipURI):
        raise fail(f"{what} must be a sip: or sips: URI, got {text!r}")
    return uri


def _parse_flags(text: str, fail: _FailFn) -> DestState:
    try:
        value = int(text[2:], 16) if text[:2].lower() == "0x" else _decimal(text)
    except ValueError:
        raise fail(f"flags must be an integer bit mask, got {text!r}") from None
    if value & ~int(STATE_BITS):
        raise fail(
            f"flags {text} has unknown bits (known: 1 inactive, 2 trying, 4 disabled, "
            "8 probing, 16 no DNS resolve, 32 no ping)"
        )
    return DestState(value)


def _parse_int(text: str, what: str, fail: _FailFn) -> int:
    try:
        return _decimal(text)
    except ValueError:
        raise fail(f"{what} must be an integer, got {text!r}") from None


def _decimal(text: str) -> int:
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(text)
    return int(text)


def _attr_int(
    attributes: dict[str, str], name: str, low: int, high: int | None, fail: _FailFn
) -> int:
    text = attributes.get(name)
    if text is None:
        return 0
    try:
        value = _decimal(text)
    except ValueError:
        raise fail(f"attribute {name} must be an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"{low}-{high}" if high is not None else f">= {low}"
        raise fail(f"attribute {name}={value} is out of range ({bounds})")
    return value


def _check_socket(text: str, fail: _FailFn) -> None:
    proto, sep, rest = text.partition(":")
    if not sep or proto.lower() not in _SOCKET_PROTOS or not rest:
        raise fail(f"socket must look like udp:IP[:PORT], got {text!r}")
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if not host or (port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)):
        raise fail(f"socket must look like udp:IP[:PORT], got {text!r}")
