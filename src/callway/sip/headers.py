"""SIP header names and the structured header values (RFC 3261 §7.3, §20, §25.1).

* header names: compact forms (§7.3.3) and canonical spelling for output;
* comma-separated lists split outside quotes and angle brackets (§7.3.1);
* ``Via`` (§20.42), ``NameAddr`` for From/To/Contact/Route (§20.10, §20.20),
  ``CSeq`` (§20.16), generic ``;name=value`` parameters (§25.1 generic-param).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callway.sip.errors import ParseError
from callway.sip.uri import URI, SipURI, ascii_digits, parse_hostport, parse_uri

# RFC 3261 §7.3.3 and the IANA registry of compact forms.
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
}

_CANONICAL_SPECIAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "min-se": "Min-SE",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
}

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1).  Only these
# are split: Authorization, Date, unknown headers and the like are kept whole.
LIST_HEADERS = frozenset(
    {
        "via", "contact", "route", "record-route", "path", "service-route",
        "allow", "supported", "require", "proxy-require", "unsupported",
        "accept", "accept-encoding", "accept-language", "allow-events",
        "content-encoding", "in-reply-to", "alert-info", "call-info",
        "error-info", "warning", "reason",
    }
)  # fmt: skip

_canonical_cache: dict[str, str] = {}


_key_cache: dict[str, str] = {}


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-case long form."""
    key = _key_cache.get(name)
    if key is None:
        key = name.strip().lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_key_cache) < 1024:
            _key_cache[name] = key
    return key


def canonical_name(key: str) -> str:
    """The conventional spelling of a header key (``call-id`` -> ``Call-ID``)."""
    name = _canonical_cache.get(key)
    if name is None:
        name = _CANONICAL_SPECIAL.get(key) or "-".join(p.capitalize() for p in key.split("-"))
        _canonical_cache[key] = name
    return name


def split_list(value: str) -> list[str]:
    """Split a header list on commas outside quotes and ``<...>`` (§7.3.1)."""
    if "," not in value:
        return [value.strip()]
    items: list[str] = []
    start = 0
    quoted = False
    angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    if quoted:
        raise ParseError(f"unterminated quoted string in {value!r}")
    items.append(value[start:].strip())
    return [item for item in items if item]


def _split_semicolons(text: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = 0
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ParseError(f"unterminated quoted string in {text!r}")
    parts.append(text[start:])
    return parts


_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# ``;name=value;flag`` with token names and values free of LWS, quotes and ";".
_SIMPLE_PARAMS_RE = re.compile(r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[^;\"\x00-\x20\x7f]+)?)+\Z")


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` generic parameters (§25.1 generic-param); keys lower-cased.

    A leading ``;`` is optional.  Empty parameters (``;;``), empty values
    (``name=``) and values with inner whitespace are rejected (RFC 4475 §3.1.2.1).
    Quoted values are kept with their quotes.
    """
    params: dict[str, str | None]
    if _SIMPLE_PARAMS_RE.match(text) is not None:
        # The common shape (";tag=abc;rport"): tokens, unquoted values, no LWS.
        params = {}
        for item in text[1:].split(";"):
            key, eq, value = item.partition("=")
            params[key.lower()] = value if eq else None
        return params
    text = text.strip()
    params = {}
    if not text:
        return params
    if text[0] == ";":
        text = text[1:]
    for item in _split_semicolons(text):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not _TOKEN_RE.match(key):
            raise ParseError(f"bad parameter name {key!r}")
        if eq:
            params[key] = _param_value(value.strip())
        else:
            params[key] = None
    return params


def _param_value(value: str) -> str:
    """Check a gen-value: token / host / quoted-string (§25.1)."""
    if not value:
        raise ParseError("empty parameter value")
    if value[0] == '"':
        unquote_string(value)
    elif " " in value or "\t" in value or '"' in value:
        raise ParseError(f"bad parameter value {value!r}")
    return value


def format_params(params: dict[str, str | None]) -> str:
    """The inverse of :func:`parse_params`."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


_QUOTE_ESCAPES = {ch: "\\" + chr(ch) for ch in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)}
_QUOTE_ESCAPES.update({ord("\\"): "\\\\", ord('"'): '\\"', 0x0A: " ", 0x0D: " "})


def quote(text: str) -> str:
    """A quoted-string (§25.1): ``"``, ``\\`` and controls become quoted-pairs.

    CR and LF cannot be carried by a quoted-pair and become spaces.
    """
    return '"' + text.translate(_QUOTE_ESCAPES) + '"'


def unquote_string(text: str) -> str:
    """The content of a quoted-string, escapes resolved."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ParseError(f"not a quoted string: {text!r}")
    body = text[1:-1]
    if "\\" not in body:
        if '"' in body:
            raise ParseError(f"unbalanced quotes in {text!r}")
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            i += 1
            if i == len(body):
                raise ParseError(f"dangling escape in {text!r}")
            ch = body[i]
        elif ch == '"':
            raise ParseError(f"unbalanced quotes in {text!r}")
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;params`` or a bare addr-spec (§20.10, §25.1)."""

    uri: URI
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter of From/To (§19.3)."""
        return self.params.get("tag")

    @property
    def sip_uri(self) -> SipURI:
        """The URI as a :class:`SipURI`; raise :class:`ParseError` otherwise."""
        if not isinstance(self.uri, SipURI):
            raise ParseError(f"not a SIP URI: {self.uri}")
        return self.uri

    def __str__(self) -> str:
        display = f"{quote(self.display)} " if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse From/To/Contact/Route values (§20.10).

    Without angle brackets every ``;param`` belongs to the header, not the URI,
    and the URI may not contain ``,``, ``?`` or ``;`` (§20.10, RFC 4475 §3.1.2.13).
    Inside angle brackets no whitespace is allowed (LAQUOT/RAQUOT, §25.1,
    RFC 4475 §3.1.2.14); a display name is a quoted-string or tokens (§3.1.2.15).
    """
    if value[:1] == "<":
        # The common shape "<uri>;params": no display name, nothing to strip in front.
        lt = 0
        display = None
    else:
        value = value.strip()
        lt = _find_unquoted(value, "<")
        if lt < 0:
            return _parse_addr_spec(value)
        display = _parse_display(value[:lt].strip())
    gt = value.find(">", lt)
    if gt < 0:
        raise ParseError(f"missing '>' in {value!r}")
    uri_text = value[lt + 1 : gt]
    if not uri_text or uri_text != uri_text.strip():
        raise ParseError(f"whitespace inside <> in {value!r}")
    uri = parse_uri(uri_text)
    tail = value[gt + 1 :]
    if not tail:
        return NameAddr(uri, display, {})
    if tail[0] != ";":
        tail = tail.strip()
        if tail and not tail.startswith(";"):
            raise ParseError(f"junk after '>' in {value!r}")
    return NameAddr(uri, display, parse_params(tail) if tail else {})


def _find_unquoted(text: str, char: str) -> int:
    """Index of the first ``char`` outside quoted strings, or -1 (§25.1 quoted-string)."""
    pos = text.find(char)
    if pos <= 0 or text.find('"', 0, pos) < 0:
        return pos
    if text[0] == '"':
        # Common case: a quoted display name without escapes.
        end = text.find('"', 1)
        if end > 0 and text.find("\\", 1, end) < 0:
            return text.find(char, end + 1)
    return _scan_unquoted(text, char)


def _scan_unquoted(text: str, char: str) -> int:
    quoted = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == char:
            return i
        i += 1
    if quoted:
        raise ParseError(f"unterminated quoted string in {text!r}")
    return -1


def _parse_display(text: str) -> str | None:
    """display-name = *(token LWS) / quoted-string (§25.1); the spacing is normalised."""
    if not text:
        return None
    if text.startswith('"'):
        return unquote_string(text)
    words = text.split()
    for word in words:
        if not _TOKEN_RE.match(word):
            raise ParseError(f"bad display name {text!r}")
    return " ".join(words)


def _parse_addr_spec(value: str) -> NameAddr:
    uri_text, semi, tail = value.partition(";")
    uri_text = uri_text.strip()
    if not uri_text or any(ch in uri_text for ch in ' \t"?,'):
        raise ParseError(f"bad addr-spec (a URI with '?' or ',' needs <>): {value!r}")
    return NameAddr(parse_uri(uri_text), None, parse_params(semi + tail) if semi else {})


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...`` (§20.42, §18.2.1)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        """The branch id; RFC 3261 ids start with ``z9hG4bK`` (§8.1.1.7)."""
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """(host, port) of sent-by."""
        return self.host, self.port

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


_VIA_RE = re.compile(
    r"[ \t]*[Ss][Ii][Pp][ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+(.*)\Z", re.S
)
_COLON_LWS_RE = re.compile(r"[ \t]*:[ \t]*")
# The common shape "SIP/2.0/UDP host:port;params" (hostname or IPv4, no LWS to fold).
_FAST_VIA_RE = re.compile(
    r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) ([A-Za-z0-9_\-.]+)(?::([0-9]{1,5}))?(;.*)?\Z", re.S
)


def parse_via(value: str) -> Via:
    """Parse one Via value (§20.42); transport upper-cased."""
    fast = _FAST_VIA_RE.match(value)
    if fast is not None:
        transport, host, port_text, param_text = fast.groups()
        port = None if port_text is None else int(port_text)
        if port is None or 0 < port <= 65535:
            params = parse_params(param_text) if param_text else {}
            return Via(transport.upper(), host, port, params)
    match = _VIA_RE.match(value)
    if match is None:
        raise ParseError(f"bad Via {value!r}")
    transport, rest = match.groups()
    sent_by, semi, tail = rest.partition(";")
    sent_by = sent_by.strip()
    if " " in sent_by or "\t" in sent_by:
        sent_by = _COLON_LWS_RE.sub(":", sent_by)
    if not sent_by or " " in sent_by or "\t" in sent_by:
        raise ParseError(f"bad Via sent-by {value!r}")
    host, port = parse_hostport(sent_by, value)
    params = parse_params(semi + tail) if semi else {}
    return Via(transport.upper(), host, port, params)


@dataclass(slots=True, frozen=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (§20.16); the number is below 2**31 (§8.1.1.5)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse a CSeq value; the number must fit in 32 bits (§8.1.1.5, RFC 4475 §3.1.2.5)."""
    parts = value.split()
    if (
        len(parts) != 2
        or len(parts[0]) > 10
        or not ascii_digits(parts[0])
        or not _TOKEN_RE.match(parts[1])
    ):
        raise ParseError(f"bad CSeq {value!r}")
    seq = int(parts[0])
    if seq > 0xFFFFFFFF:
        raise ParseError(f"CSeq number too large: {parts[0]}")
    return CSeq(seq, parts[1])


def parse_nonneg_int(value: str, name: str, maximum: int) -> int:
    """A header of one non-negative integer (Content-Length, Expires, Max-Forwards)."""
    text = value.strip()
    if len(text) <= 10 and text.isascii() and text.isdigit():
        number = int(text)
        if number <= maximum:
            return number
    raise ParseError(f"bad {name} {value!r}")
