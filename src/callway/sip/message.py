"""SIP requests and responses: parse and serialize (RFC 3261 §7, §20, §25).

Parsing is lazy (DESIGN.md principle 5): :func:`parse_message` only splits the
start line and the header lines; structured values (Via, From, CSeq, ...) are
parsed on first access and cached.  A message that was parsed and not changed
serializes to its original bytes, so a proxy re-sends what it did not touch.

Header storage is a list of ``[key, value]`` pairs where ``key`` is the
lower-case long name (compact forms expanded, RFC 3261 §7.3.3).  Structured
values handed out by the properties are snapshots: to change a header, call
:meth:`Message.set` / :meth:`Message.prepend` / :meth:`Message.remove`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from callway.sip.errors import ParseError
from callway.sip.headers import (
    LIST_HEADERS,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    header_key,
    parse_cseq,
    parse_name_addr,
    parse_nonneg_int,
    parse_via,
    split_list,
)
from callway.sip.headers import _canonical_cache as _canonical_names
from callway.sip.headers import _key_cache as _header_keys
from callway.sip.status import reason_phrase
from callway.sip.uri import URI, SipURI, ascii_digits, parse_uri

SIP_VERSION = "SIP/2.0"
# Header key -> the ``Message._cache`` entry parsed from it (others use the key itself).
_CACHE_SLOT = {"via": "vias", "contact": "contacts"}
_MAX_CONTENT_LENGTH = 2**31 - 1


class Message:
    """What requests and responses share: headers and body (RFC 3261 §7)."""

    __slots__ = ("__weakref__", "_cache", "_index", "_index_size", "_raw", "body", "headers")

    def __init__(self, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self.headers: list[list[str]] = [[header_key(k), v] for k, v in headers]
        self.body = body
        self._cache: dict[str, Any] = {}
        self._raw: bytes | None = None
        self._index: dict[str, list[str]] | None = None
        self._index_size = -1

    # -- generic header access ------------------------------------------------

    def _lookup(self) -> dict[str, list[str]]:
        """Header values by key, in order: built on the first lookup, dropped on changes.

        A message is read a dozen times on its way through a server (validation,
        transaction key, registrar, response); one pass over the lines beats a
        scan per read.  The mutators below drop it; a list grown directly (as
        :func:`make_response` does) is noticed by its length.
        """
        index = self._index
        headers = self.headers
        if index is None or self._index_size != len(headers):
            index = {}
            for key, value in headers:
                found = index.get(key)
                if found is None:
                    index[key] = [value]
                else:
                    found.append(value)
            self._index = index
            self._index_size = len(headers)
        return index

    def get(self, name: str) -> str | None:
        """The first header line's value of ``name`` (any case, compact or long)."""
        key = _header_keys.get(name) or header_key(name)
        values = self._lookup().get(key)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers are split on commas (§7.3.1)."""
        key = _header_keys.get(name) or header_key(name)
        values = self._lookup().get(key)
        if not values:
            return []
        if key in LIST_HEADERS:
            if len(values) == 1:
                return split_list(values[0])
            return [item for v in values for item in split_list(v)]
        return list(values)

    def header_counts(self) -> dict[str, int]:
        """How many lines each header key has."""
        return {key: len(values) for key, values in self._lookup().items()}

    def count(self, name: str) -> int:
        """How many header lines named ``name`` there are."""
        return len(self._lookup().get(header_key(name), ()))

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def _changed(self, key: str | None = None) -> None:
        """Forget the wire bytes and the parsed values ``key`` (None: all) fed."""
        self._raw = None
        self._index = None
        cache = self._cache
        if cache:
            if key is None:
                cache.clear()
            else:
                cache.pop(_CACHE_SLOT.get(key, key), None)
                if key == "via":
                    cache.pop("via", None)  # the topmost Via, parsed alone

    def set(self, name: str, value: object) -> None:
        """Replace every line of ``name`` by one line (kept at the first one's place)."""
        key = header_key(name)
        text = str(value)
        for i, (k, _) in enumerate(self.headers):
            if k == key:
                self.headers[i] = [key, text]
                self.headers[i + 1 :] = [h for h in self.headers[i + 1 :] if h[0] != key]
                break
        else:
            self.headers.append([key, text])
        self._changed(key)

    def add(self, name: str, value: object) -> None:
        """Append a header line."""
        key = header_key(name)
        self.headers.append([key, str(value)])
        self._changed(key)

    def prepend(self, name: str, value: object) -> None:
        """Insert a line before the first line of the same name (Via, Record-Route).

        A parsed message keeps its wire bytes: the new line is spliced into
        them, so a proxy adding its Via does not re-serialise the rest
        (DESIGN.md principle 5).
        """
        key = header_key(name)
        text = str(value)
        for i, (k, _) in enumerate(self.headers):
            if k == key:
                self.headers.insert(i, [key, text])
                break
        else:
            self.headers.insert(0, [key, text])
        raw = self._raw
        self._changed(key)
        if raw is not None:
            cut = _raw_line_offset(raw, key)
            line = f"{canonical_name(key)}: {text}\r\n".encode("utf-8", "surrogateescape")
            self._raw = raw[:cut] + line + raw[cut:]

    def remove(self, name: str) -> int:
        """Remove every line of ``name``; return how many were removed."""
        key = header_key(name)
        before = len(self.headers)
        self.headers = [h for h in self.headers if h[0] != key]
        if len(self.headers) != before:
            self._changed(key)
        return before - len(self.headers)

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of a list header (e.g. a Via or Route)."""
        key = header_key(name)
        for i, (k, v) in enumerate(self.headers):
            if k == key:
                items = split_list(v)
                raw = self._raw
                if len(items) > 1:
                    self.headers[i] = [key, ", ".join(items[1:])]
                    raw = None
                else:
                    del self.headers[i]
                self._changed(key)
                if raw is not None:  # a whole line went: cut it from the wire bytes too
                    self._raw = _cut_raw_line(raw, key)
                return items[0] if items else None
        return None

    # -- structured values (cached) ------------------------------------------------

    def _required(self, name: str) -> str:
        values = self._lookup().get(name)
        if values:
            return values[0]
        value = self.get(name)
        if value is None:
            raise ParseError(f"missing {canonical_name(header_key(name))} header")
        return value

    @property
    def call_id(self) -> str:
        """Call-ID (§20.8)."""
        return self._required("call-id").strip()

    @property
    def cseq(self) -> CSeq:
        """CSeq (§20.16)."""
        value = self._cache.get("cseq")
        if value is None:
            value = self._cache["cseq"] = parse_cseq(self._required("cseq"))
        return value

    @property
    def from_(self) -> NameAddr:
        """From (§20.20)."""
        value = self._cache.get("from")
        if value is None:
            value = self._cache["from"] = parse_name_addr(self._required("from"))
        return value

    @property
    def to(self) -> NameAddr:
        """To (§20.39)."""
        value = self._cache.get("to")
        if value is None:
            value = self._cache["to"] = parse_name_addr(self._required("to"))
        return value

    @property
    def vias(self) -> list[Via]:
        """All Via values, topmost first (§20.42)."""
        cache = self._cache
        value = cache.get("vias")
        if value is None:
            items = self.get_all("via")
            top: Via | None = cache.get("via")  # the topmost one, parsed alone before
            if top is not None and items:
                value = [top, *[parse_via(v) for v in items[1:]]]
            else:
                value = [parse_via(v) for v in items]
            cache["vias"] = value
        return value

    @property
    def via(self) -> Via:
        """The topmost Via (parsed alone: a proxy rarely needs the others)."""
        cache = self._cache
        vias = cache.get("vias")
        if vias is not None:
            if not vias:
                raise ParseError("missing Via header")
            first: Via = vias[0]
            return first
        top: Via | None = cache.get("via")
        if top is None:
            value = self.get("via")
            if value is None:
                raise ParseError("missing Via header")
            text = split_list(value)[0] if "," in value else value
            top = cache["via"] = parse_via(text)
        return top

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values (§20.10); ``Contact: *`` is reported by :attr:`contact_star`."""
        value = self._cache.get("contacts")
        if value is None:
            items = self.get_all("contact")
            value = [] if items == ["*"] else [parse_name_addr(v) for v in items]
            self._cache["contacts"] = value
        return value

    @property
    def contact_star(self) -> bool:
        """True for the un-registration form ``Contact: *`` (§10.2.2)."""
        if self._cache.get("contacts"):
            return False  # parsed contacts: not the "*" form
        return self.get_all("contact") == ["*"]

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22), 0-255."""
        value = self.get("max-forwards")
        return None if value is None else parse_nonneg_int(value, "Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        """Expires (§20.19) in seconds."""
        cache = self._cache
        if "expires" in cache:
            cached: int | None = cache["expires"]
            return cached
        value = self.get("expires")
        expires = None if value is None else parse_nonneg_int(value, "Expires", 0xFFFFFFFF)
        cache["expires"] = expires
        return expires

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-case, without parameters (§20.15)."""
        value = self.get("content-type")
        return None if value is None else value.split(";", 1)[0].strip().lower()

    # -- serialization ------------------------------------------------------------

    def start_line(self) -> str:
        """The request line or status line."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire; Content-Length always matches the body (§20.14).

        A parsed message that was not changed returns its original bytes.
        """
        if self._raw is not None:
            return self._raw
        return self.serialize()

    def seal(self) -> bytes:
        """Serialise now and keep the bytes: :meth:`to_bytes` returns them from then on.

        They are kept, as a parsed message keeps its wire bytes, until the
        message is changed through :meth:`set`, :meth:`add`, :meth:`prepend`,
        :meth:`remove`, :meth:`pop_first` or a new Request-URI.  The
        transaction layer seals what it sends, so the shell's send and every
        retransmission reuse one serialisation.
        """
        raw = self._raw
        if raw is None:
            raw = self._raw = self.serialize()
        return raw

    def serialize(self) -> bytes:
        """Build the message from its start line, headers and body (§7).

        Headers are written one per line under their canonical long names;
        Content-Length is rewritten last to match the body.
        """
        names = _canonical_names
        lines = [self.start_line()]
        lines += [
            f"{names.get(k) or canonical_name(k)}: {v}"
            for k, v in self.headers
            if k != "content-length"
        ]
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    """A SIP request (§7.1)."""

    __slots__ = ("_uri", "_uri_text", "method")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self._uri: URI | None = None if isinstance(uri, str) else uri
        self._uri_text = uri if isinstance(uri, str) else str(uri)

    @property
    def uri(self) -> URI:
        """The Request-URI (§7.1), parsed on first access."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri = value
        self._uri_text = str(value)
        self._raw = None

    @property
    def sip_uri(self) -> SipURI:
        """The Request-URI as a SIP URI; ParseError(416) for other schemes."""
        uri = self.uri
        if not isinstance(uri, SipURI):
            raise ParseError(f"unsupported URI scheme {uri.scheme!r}", 416)
        return uri

    def start_line(self) -> str:
        return f"{self.method} {self._uri_text} {SIP_VERSION}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._uri_text}>"


class Response(Message):
    """A SIP response (§7.2)."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one whole message (a UDP datagram or a framed stream message).

    ``stream`` says the bytes came from a stream transport, where the framer
    already used Content-Length; over UDP a Content-Length larger than the
    datagram is an error and extra bytes are ignored (RFC 3261 §18.3).
    Raise :class:`ParseError` with the status to answer (RFC 4475 §3.1.2).
    """
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise ParseError("no empty line after the headers")
    text = data[start:end].decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    message = _parse_start_line(lines[0])
    _parse_header_lines(message, lines)
    body = data[end + 4 :]
    length_text = _content_length(message.headers)
    if length_text is not None:
        length = parse_nonneg_int(length_text, "Content-Length", _MAX_CONTENT_LENGTH)
        if length > len(body):
            raise ParseError(f"Content-Length {length} larger than the body ({len(body)})")
        if length < len(body):
            body = body[:length]
            data = data[: end + 4 + length]
    elif stream and body:
        raise ParseError("missing Content-Length on a stream transport")
    message.body = body
    message._raw = data[start:] if start else data
    return message


def _raw_line_offset(raw: bytes, key: str) -> int:
    """Byte offset of the first header line named ``key`` in ``raw``, else of the first line."""
    first = raw.find(b"\r\n") + 2
    end = raw.find(b"\r\n\r\n", first - 2) + 2
    pos = first
    while pos < end:
        stop = raw.find(b"\r\n", pos)
        name, colon, _ = raw[pos:stop].partition(b":")
        continued = name[:1] in (b" ", b"\t")
        if colon and not continued and header_key(name.decode("latin-1")) == key:
            return pos
        pos = stop + 2
    return first


def _cut_raw_line(raw: bytes, key: str) -> bytes | None:
    """``raw`` without the first header line named ``key`` (folded lines included)."""
    cut = _raw_line_offset(raw, key)
    stop = raw.find(b"\r\n", cut)
    while raw[stop + 2 : stop + 3] in (b" ", b"\t"):
        stop = raw.find(b"\r\n", stop + 2)
    name = raw[cut:stop].partition(b":")[0].decode("latin-1")
    if stop < 0 or header_key(name) != key:
        return None  # not found after all: serialise from the header list
    return raw[:cut] + raw[stop + 2 :]


def _content_length(headers: list[list[str]]) -> str | None:
    """The Content-Length value; conflicting values are a framing error (RFC 4475 §3.3.9)."""
    values = [v for k, v in headers if k == "content-length"]
    if not values:
        return None
    if len(values) > 1 and len(set(values)) > 1:
        raise ParseError(f"conflicting Content-Length values {values[:4]!r}")
    return values[0]


def _parse_start_line(line: str) -> Request | Response:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise ParseError(f"bad start line {line[:80]!r}")
    if parts[0][:4].upper() == "SIP/":
        return _parse_status_line(parts)
    method, uri_text, version = parts
    if version != SIP_VERSION and version.upper() != SIP_VERSION:
        if version[:4].upper() == "SIP/" and " " not in version:
            raise ParseError(f"unsupported SIP version {version[:20]!r}", 505)
        raise ParseError(f"bad request line {line[:80]!r}")
    if method not in _COMMON_METHODS and (
        not method or not method.isascii() or not _is_token(method)
    ):
        raise ParseError(f"bad method {method!r}")
    if not uri_text or uri_text[0] == "<":
        raise ParseError(f"bad Request-URI {uri_text!r}")
    return Request(method, uri_text)


def _parse_status_line(parts: list[str]) -> Response:
    version, code, reason = parts
    if version.upper() != SIP_VERSION:
        raise ParseError(f"unsupported SIP version {version[:20]!r}", None)
    if len(code) != 3 or not ascii_digits(code) or not 100 <= int(code) <= 699:
        raise ParseError(f"bad status code {code!r}", None)
    return Response(int(code), reason)


# Methods seen every second: known tokens, no character check needed.
_COMMON_METHODS = frozenset(
    {"REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "NOTIFY", "SUBSCRIBE", "INFO"}
)
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def _is_token(text: str) -> bool:
    return all(ch in _TOKEN_CHARS for ch in text)


# Header names seen on the wire -> lookup key; bounded so junk cannot grow it.
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 512


MAX_HEADER_LINES = 256


def _parse_header_lines(message: Message, lines: list[str]) -> None:
    if len(lines) > MAX_HEADER_LINES:
        raise ParseError(f"more than {MAX_HEADER_LINES} header lines")
    """Split header lines into ``[key, value]`` pairs, unfolding continuations (§7.3.1)."""
    headers = message.headers
    cache = _KEY_CACHE
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = cache.get(name) if colon else None  # a bare known name is no header
        if key is None:
            if line[:1] in (" ", "\t"):
                _unfold(headers, line)
                continue
            if not colon:
                raise ParseError(f"header line without ':' {line[:40]!r}")
            key = _header_line_key(name)
        headers.append([key, value.strip()])


def _unfold(headers: list[list[str]], line: str) -> None:
    """Join a continuation line to the previous header value (§7.3.1 LWS)."""
    if not headers:
        raise ParseError("continuation line before the first header")
    previous = headers[-1][1]
    part = line.strip()
    headers[-1][1] = f"{previous} {part}" if previous and part else previous or part


def _header_line_key(name: str) -> str:
    stripped = name.rstrip(" \t")
    if not stripped or not _is_token(stripped):
        raise ParseError(f"bad header name {stripped[:40]!r}")
    key = header_key(stripped)
    if len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[name] = key
    return key


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` (RFC 3261 §8.2.6.2).

    Via, From, Call-ID and CSeq are copied; To is copied and gets ``to_tag``
    unless it has a tag already (a 100 Trying never gets one, §8.2.6.2).
    """
    response = Response(status, reason if reason is not None else reason_phrase(status))
    out = response.headers
    for key, value in request.headers:
        if key in ("via", "from", "call-id", "cseq"):
            out.append([key, value])
        elif key == "to":
            if to_tag and status != 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            out.append([key, value])
    for key, value in headers:
        out.append([header_key(key), value])
    response.body = body
    return response
