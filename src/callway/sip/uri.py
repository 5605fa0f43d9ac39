"""SIP and SIPS URIs (RFC 3261 §19.1) and absolute URIs of other schemes.

``parse_uri`` returns a :class:`SipURI` for ``sip:``/``sips:`` and an
:class:`AbsoluteURI` for anything else (``tel:``, ``im:``, unknown schemes,
RFC 4475 §3.3.2), so that a server can answer 416 instead of failing to parse.

The user part is kept in its escaped wire form (RFC 3261 §19.1.4 compares
unescaped values; :func:`unescape` is provided for that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from urllib.parse import unquote

from callway.sip.errors import ParseError

# RFC 3261 §25.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
# Characters never allowed unescaped anywhere in a URI on the wire.
_FORBIDDEN = re.compile(r'[\x00-\x20<>"\x7f]')
# hostname / IPv4 (loose: labels of alnum and "-", "."; "_" tolerated as seen in the wild).
_HOST_RE = re.compile(r"[A-Za-z0-9_\-.]+\Z")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
# The common shape ``sip:user@host:port;param=value`` in one match: a user of
# unreserved characters only (no escapes, no password), a hostname or IPv4
# address, a port of at most 5 digits, non-empty parameters and no headers.
# Anything else (and a port out of range) takes the general path below, which
# gives the same result or the error.
_FAST_SIP_RE = re.compile(
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?([A-Za-z0-9_\-.]+)(?::([0-9]{1,5}))?"
    r"((?:;[^;?@\x00-\x20<>\"\x7f]+)*)\Z"
)


def ascii_digits(text: str) -> bool:
    """True if ``text`` is one or more ASCII digits (RFC 5234 DIGIT, not Unicode digits)."""
    return text.isascii() and text.isdigit()


def unescape(text: str) -> str:
    """Undo %HH escaping (RFC 3261 §25.1 ``escaped``)."""
    return unquote(text) if "%" in text else text


@dataclass(slots=True)
class SipURI:
    """``sip:user:password@host:port;uri-parameters?headers``."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str | None:
        """The ``transport=`` parameter, lower-cased, if present."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def secure(self) -> bool:
        """True for ``sips:`` (RFC 3261 §19.1)."""
        return self.scheme == "sips"

    @property
    def host_port(self) -> str:
        """``host[:port]`` as it appears in the URI."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def copy(self) -> SipURI:
        """A copy whose parameter and header dicts can be changed freely."""
        return SipURI(
            self.host,
            self.user,
            self.port,
            self.scheme,
            self.password,
            dict(self.params),
            dict(self.headers),
        )

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += (":", self.password)
            parts.append("@")
        parts.append(self.host_port)
        for key, value in self.params.items():
            parts.append(f";{key}" if value is None else f";{key}={value}")
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(parts)


@dataclass(slots=True, frozen=True)
class AbsoluteURI:
    """A URI of a scheme other than sip/sips, kept opaque (RFC 3261 §19.1)."""

    scheme: str
    raw: str

    def __str__(self) -> str:
        return self.raw


URI = SipURI | AbsoluteURI


# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/"
)


_ESCAPED = re.compile(r"%[0-9A-Fa-f]{2}")


def escape_user(text: str) -> str:
    """``text`` as a URI user part: anything outside the grammar becomes %HH (§19.1.2).

    An ``escaped`` already there (a user part as parsed keeps its %HH) stays.
    """
    if all(ch in _USER_SAFE for ch in text):
        return text
    escaped = []
    for index, ch in enumerate(text):
        if ch in _USER_SAFE or (ch == "%" and _ESCAPED.match(text, index)):
            escaped.append(ch)
        else:  # a byte the parser kept as a surrogate goes back out as that byte
            escaped.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(escaped)


def parse_uri(text: str) -> URI:
    """Parse a URI; raise :class:`ParseError` if it is not one.

    RFC 3261 §19.1.1 (components), §25.1 (grammar).
    """
    fast = _FAST_SIP_RE.match(text)
    if fast is not None:
        scheme, user, host, port_text, param_text = fast.groups()
        port = None
        if port_text is not None:
            port = int(port_text)
            if not 0 < port <= 65535:
                port = -1
        if port != -1:
            params: dict[str, str | None] = {}
            if param_text:
                for item in param_text[1:].split(";"):
                    key, eq, value = item.partition("=")
                    params[key.lower()] = value if eq else None
            return SipURI(host, user, port, scheme, None, params, {})
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise ParseError(f"not a URI: {text!r}")
    if _FORBIDDEN.search(text):
        raise ParseError(f"invalid character in URI: {text!r}")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        return AbsoluteURI(scheme, text)
    return _parse_sip(scheme, rest, text)


def _parse_sip(scheme: str, rest: str, text: str) -> SipURI:
    # The user part may hold "?" and ";" (user-unreserved) but never "@".
    at = rest.find("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if colon:
            password = pw
        if not user:
            raise ParseError(f"empty user part in URI: {text!r}")
    rest, _, header_text = rest.partition("?")
    hostport, *param_items = rest.split(";")
    host, port = parse_hostport(hostport, text)
    params: dict[str, str | None] = {}
    for item in param_items:
        if not item:
            raise ParseError(f"empty URI parameter: {text!r}")
        key, eq, value = item.partition("=")
        params[key.lower()] = value if eq else None
    headers: dict[str, str] = {}
    if header_text:
        for item in header_text.split("&"):
            key, _, value = item.partition("=")
            headers[key] = value
    return SipURI(host, user, port, scheme, password, params, headers)


def parse_hostport(hostport: str, context: str = "") -> tuple[str, int | None]:
    """Split ``host[:port]`` (RFC 3261 §25.1 hostport, IPv6 references in []).

    An IPv6 reference must hold a valid IPv6 address (RFC 5954 §4.1 corrects
    the RFC 3261 ABNF, so ``[2001:db8:::192.0.2.1]`` is rejected, RFC 5118 §4.10);
    ``[2001:db8::10:5070]`` is a valid address without a port (RFC 5118 §4.3).
    """
    if hostport.startswith("["):
        end = hostport.find("]")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if end < 0 or not _IPV6_RE.match(host) or not _valid_ipv6(host[1:-1]):
            raise ParseError(f"bad IPv6 reference in {context or hostport!r}")
        if tail and not tail.startswith(":"):
            raise ParseError(f"junk after IPv6 reference in {context or hostport!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
        if not _HOST_RE.match(host):
            raise ParseError(f"bad host in {context or hostport!r}")
    if port_text is None:
        return host, None
    if len(port_text) > 5 or not ascii_digits(port_text) or not 0 < int(port_text) <= 65535:
        raise ParseError(f"bad port in {context or hostport!r}")
    return host, int(port_text)


def _valid_ipv6(text: str) -> bool:
    try:
        IPv6Address(text)
    except ValueError:
        return False
    return True
