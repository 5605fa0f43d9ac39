"""What a server must reject after a message parsed (RFC 3261 §8.2, §16.3, RFC 4475).

:func:`~callway.sip.message.parse_message` only frames a message and splits its
header lines (parsing is lazy).  Before a UAS or proxy acts on a request it
calls :func:`validate_request`, which parses every header it relies on and
applies the checks of RFC 3261 §8.2 (UAS) or §16.3 (proxy).  A failure raises
:class:`~callway.sip.errors.ParseError` whose ``status_hint`` is the response
to send (400, 416, 420, 415, 483, 501) and whose ``headers`` are the header
fields that response must carry (``Unsupported``, ``Accept``).  A request
that may not be answered (ACK, RFC 3261 §17) gets ``status_hint=None``.

:func:`validate_response` does the same for responses; every failure there
means "drop silently" (RFC 3261 §8.1.3.3, §16.7, RFC 4475 §3.1.2.5, §3.3.10).

The verdicts follow the expectations stated in RFC 4475 §3 and RFC 5118 §4
section by section; the tests replay the RFCs' own messages.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from callway.sip.errors import ParseError
from callway.sip.headers import canonical_name, parse_name_addr, parse_nonneg_int, parse_params
from callway.sip.message import Message, Request, Response
from callway.sip.uri import SipURI, ascii_digits

__all__ = [
    "KNOWN_METHODS",
    "MAX_CSEQ",
    "SINGLE_INSTANCE_HEADERS",
    "accepts",
    "validate_request",
    "validate_response",
]

# RFC 3261 and the extension methods in the IANA registry that callway knows.
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip

# RFC 3261 §8.1.1.5: the CSeq number MUST be less than 2**31.
MAX_CSEQ = 2**31 - 1
# delta-seconds (Expires, Retry-After, Min-Expires, contact expires) fit in 32 bits (§20.19).
MAX_DELTA_SECONDS = 2**32 - 1
_MAX_CONTENT_LENGTH = 2**31 - 1

# Headers whose grammar allows one value only (RFC 3261 §20, §7.3.1): several
# lines with differing values make the request ambiguous (RFC 4475 §3.3.8).
SINGLE_INSTANCE_HEADERS = frozenset(
    {
        "to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type",
        "content-disposition", "expires", "min-expires", "date", "mime-version",
        "retry-after", "timestamp", "priority", "organization", "reply-to", "subject",
        "user-agent", "server", "rseq", "rack", "event", "session-expires", "min-se",
        "refer-to", "sip-etag", "sip-if-match",
    }
)  # fmt: skip

_MANDATORY = ("to", "from", "cseq", "call-id", "via")  # §8.1.1, RFC 4475 §3.3.1
_NAME_ADDR_LISTS = ("route", "record-route")

# callid = word [ "@" word ] (§25.1)
_WORD = r"""[A-Za-z0-9\-.!%*_+`'~()<>:\\"/\[\]?{}]+"""
_CALLID_RE = re.compile(f"{_WORD}(@{_WORD})?\\Z")
# rfc1123-date = wkday "," SP date1 SP time SP "GMT" (§25.1, RFC 4475 §3.1.2.12)
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT\Z"
)
_BROADCAST = frozenset({"255.255.255.255"})


# -- requests -----------------------------------------------------------------


def validate_request(
    request: Request,
    *,
    supported: Collection[str] = (),
    accept: Collection[str] | None = None,
    forwarding: bool = False,
    known_methods: Collection[str] = KNOWN_METHODS,
) -> None:
    """Raise :class:`ParseError` if ``request`` must be rejected, else return.

    ``supported``: option tags this element implements; an unknown tag in
    Require (as a UAS, §8.2.2.3) or Proxy-Require (when ``forwarding``, §16.3
    step 5) gives 420 with an ``Unsupported`` header (RFC 4475 §3.3.5).

    ``accept``: media types this UAS understands in a body (``type/subtype``,
    ``type/*`` or ``*/*``); another Content-Type gives 415 with ``Accept``
    (§8.2.3, RFC 4475 §3.3.6).  ``None`` skips the check, as a proxy does.

    ``forwarding``: the request is about to be proxied, so Max-Forwards 0 gives
    483 (§16.3 step 3, RFC 4475 §3.3.11).  A request the element answers
    itself (an OPTIONS to a proxy, any request to a UAS) passes with
    Max-Forwards 0 (§16.3, §8.2).

    ``known_methods``: a CSeq method that differs from an unknown request
    method gives 501 rather than 400 (RFC 4475 §3.1.2.18).
    """
    try:
        _check_request(request, supported, accept, forwarding, known_methods)
    except ParseError as exc:
        if request.method == "ACK" and exc.status_hint is not None:
            # An ACK is never answered (§17.1.1.3, §17.2.3): drop it instead.
            raise ParseError(exc.reason, None) from exc
        raise


def _check_request(
    request: Request,
    supported: Collection[str],
    accept: Collection[str] | None,
    forwarding: bool,
    known_methods: Collection[str],
) -> None:
    present = _check_common(request)
    _check_cseq_method(request, known_methods)
    _check_request_uri(request)
    if forwarding:
        _check_max_forwards(request)
    tags_header = "proxy-require" if forwarding else "require"
    if tags_header in present and request.method not in ("ACK", "CANCEL"):
        # §8.2.2.3: Require/Proxy-Require are ignored in CANCEL and ACK.
        _check_option_tags(request, tags_header, supported)
    if accept is not None and not forwarding:
        _check_content_type(request, accept)


def _check_cseq_method(request: Request, known_methods: Collection[str]) -> None:
    """The CSeq method matches the request method (§8.1.1.5, RFC 4475 §3.1.2.17-18).

    ACK and CANCEL carry their own method in CSeq too (§17.1.1.3, §9.1).
    """
    cseq = request.cseq
    if cseq.seq > MAX_CSEQ:
        raise ParseError(f"CSeq number {cseq.seq} is not below 2**31 (RFC 3261 §8.1.1.5)")
    if cseq.method != request.method:
        status = 400 if request.method in known_methods else 501
        raise ParseError(f"CSeq method {cseq.method!r} does not match {request.method!r}", status)


def _check_request_uri(request: Request) -> None:
    """Only sip/sips (416, §8.2.2.1, §16.3 step 2), without headers (§19.1.1).

    RFC 4475 §3.1.2.11 allows rejecting escaped headers in a Request-URI with 400.
    """
    uri = request.uri
    if not isinstance(uri, SipURI):
        raise ParseError(f"unsupported Request-URI scheme {uri.scheme!r}", 416)
    if uri.headers:
        raise ParseError("headers are not allowed in a SIP Request-URI (RFC 3261 §19.1.1)")


def _check_max_forwards(request: Request) -> None:
    """A request to forward with Max-Forwards 0 gets 483 (§16.3 step 3)."""
    if request.max_forwards == 0:
        raise ParseError("Max-Forwards is 0", 483)


def _check_option_tags(request: Request, header: str, supported: Collection[str]) -> None:
    """Unknown option tags in Require / Proxy-Require give 420 (§8.2.2.3, §16.3 step 5)."""
    tags = request.get_all(header)
    if not tags:
        return
    known = {tag.lower() for tag in supported}
    unknown = [tag for tag in tags if tag.lower() not in known]
    if unknown:
        raise ParseError(
            f"unsupported option tags in {canonical_name(header)}: {', '.join(unknown)}",
            420,
            [("Unsupported", ", ".join(unknown))],
        )


def _check_content_type(request: Request, accept: Collection[str]) -> None:
    """A body this UAS does not understand gives 415 with Accept (§8.2.3)."""
    if not request.body:
        return
    media_type = request.content_type
    if media_type is None:
        raise ParseError("a body without Content-Type (RFC 3261 §20.15)")
    if not _type_matches(media_type, accept):
        raise ParseError(
            f"unsupported Content-Type {media_type!r}", 415, [("Accept", ", ".join(accept))]
        )
    encodings = [e.lower() for e in request.get_all("content-encoding")]
    if any(encoding != "identity" for encoding in encodings):
        raise ParseError(
            f"unsupported Content-Encoding {', '.join(encodings)}",
            415,
            [("Accept-Encoding", "identity")],
        )


def _type_matches(media_type: str, patterns: Collection[str]) -> bool:
    top = media_type.split("/", 1)[0]
    for pattern in patterns:
        pattern = pattern.split(";", 1)[0].strip().lower()
        if pattern in (media_type, "*/*", f"{top}/*"):
            return True
    return False


def accepts(message: Message, media_type: str) -> bool:
    """Whether the Accept header allows a body of ``media_type`` (§20.1).

    Without Accept a server assumes ``application/sdp`` (§20.1); an empty
    Accept allows nothing.  Lets a UAS answer 406 (RFC 4475 §3.3.15).
    """
    if "accept" not in message:
        return media_type.lower() == "application/sdp"
    return _type_matches(media_type.lower(), message.get_all("accept"))


# -- responses ----------------------------------------------------------------


def validate_response(response: Response, *, forwarding: bool = False) -> None:
    """Raise :class:`ParseError` (``status_hint=None``: drop) if ``response`` is unusable.

    Checks the mandatory headers and scalar fields (RFC 4475 §3.1.2.5).  A UAC
    (``forwarding=False``) drops a response with more than one Via (§8.1.3.3);
    a proxy about to forward it (``forwarding=True``, §16.7 step 3) drops it
    when the next Via sends it to a broadcast address (RFC 4475 §3.3.10).
    """
    try:
        _check_common(response)
        if response.cseq.seq > MAX_CSEQ:
            raise ParseError(f"CSeq number {response.cseq.seq} is not below 2**31")
        _check_response_vias(response, forwarding)
    except ParseError as exc:
        if exc.status_hint is None:
            raise
        raise ParseError(exc.reason, None) from exc


def _check_response_vias(response: Response, forwarding: bool) -> None:
    vias = response.vias
    if not forwarding:
        if len(vias) != 1:
            raise ParseError("a response to a UAC has exactly one Via (RFC 3261 §8.1.3.3)", None)
        return
    if len(vias) < 2:
        return  # meant for this element: it is not forwarded (§16.7 step 3)
    upstream = vias[1]
    targets = (upstream.host, upstream.params.get("received") or "")
    if any(target.strip("[]") in _BROADCAST for target in targets):
        raise ParseError("response would be forwarded to a broadcast address", None)


# -- shared ---------------------------------------------------------------------


def _check_common(message: Message) -> dict[str, int]:
    """Mandatory headers present, single-instance headers single, every known header parses.

    One pass over the header lines counts what is there; the checks below
    then look only at headers that are present, and the values they parse
    (From, To, Via, Contact, CSeq) stay cached on the message for the
    registrar, the transaction layer and the response.
    """
    counts = _header_counts(message)
    _check_mandatory(message, counts)
    _check_single_instances(message, counts)
    _check_scalars(message, counts)
    _check_address_headers(message, counts)
    if "date" in counts:
        _check_date(message)
    return counts


def _header_counts(message: Message) -> dict[str, int]:
    return message.header_counts()


def _check_mandatory(message: Message, counts: Collection[str] | None = None) -> None:
    """To, From, CSeq, Call-ID and Via are mandatory (§8.1.1, §20; RFC 4475 §3.3.1)."""
    present = _header_counts(message) if counts is None else counts
    missing = [canonical_name(key) for key in _MANDATORY if key not in present]
    if missing:
        raise ParseError(f"missing mandatory headers: {', '.join(missing)}")


def _check_single_instances(message: Message, counts: dict[str, int] | None = None) -> None:
    """Several lines of a single-value header with differing values (RFC 4475 §3.3.8)."""
    if counts is None:
        counts = _header_counts(message)
    if len(counts) == len(message.headers):
        return  # every header name appears once
    repeated = {key for key, n in counts.items() if n > 1 and key in SINGLE_INSTANCE_HEADERS}
    if not repeated:
        return
    seen: dict[str, str] = {}
    for key, value in message.headers:
        if key not in repeated:
            continue
        normal = " ".join(value.split())
        first = seen.setdefault(key, normal)
        if first != normal:
            raise ParseError(f"several differing {canonical_name(key)} headers")


def _check_address_headers(message: Message, counts: Collection[str] | None = None) -> None:
    """From, To, Via, Contact, Route and Record-Route parse (§20.10, §20.42; RFC 4475 §3.1.2)."""
    present = _header_counts(message) if counts is None else counts
    message.from_  # noqa: B018 - parsing is the check
    message.to  # noqa: B018
    if not message.vias:
        raise ParseError("empty Via header")
    call_id = message.call_id
    if not _CALLID_RE.match(call_id):
        raise ParseError(f"bad Call-ID {call_id[:60]!r}")
    if "contact" in present:
        for contact in message.contacts:  # [] for "Contact: *"
            expires = contact.params.get("expires")
            if expires is not None:
                parse_nonneg_int(expires, "contact expires", MAX_DELTA_SECONDS)
    for key in _NAME_ADDR_LISTS:
        if key in present:
            for value in message.get_all(key):
                _parse_route(value)


def _parse_route(value: str) -> None:
    """route-param = name-addr *( SEMI rr-param ) (§20.30, §20.34): brackets are required."""
    if "<" not in value:
        raise ParseError(f"Route/Record-Route value without <>: {value[:60]!r}")
    parse_name_addr(value)


def _check_scalars(message: Message, counts: Collection[str] | None = None) -> None:
    """Scalar fields within range (RFC 4475 §3.1.2.3-5): CSeq, Max-Forwards, Expires, ..."""
    present = _header_counts(message) if counts is None else counts
    message.cseq  # noqa: B018 - 32-bit unsigned, method a token
    if "max-forwards" in present:
        message.max_forwards  # noqa: B018 - 0..255 (§20.22)
    if "expires" in present:
        message.expires  # noqa: B018 - 32 bits (§20.19)
    if "content-length" in present:
        for value in message.get_all("content-length"):
            parse_nonneg_int(value, "Content-Length", _MAX_CONTENT_LENGTH)
    if "min-expires" in present:
        for value in message.get_all("min-expires"):
            parse_nonneg_int(value, "Min-Expires", MAX_DELTA_SECONDS)
    if "retry-after" in present:
        for value in message.get_all("retry-after"):
            _parse_retry_after(value)
    if "warning" in present:
        for value in message.get_all("warning"):
            _parse_warning(value)


def _parse_retry_after(value: str) -> None:
    """Retry-After = delta-seconds [ comment ] *( SEMI retry-param ) (§20.33)."""
    head, semi, params = value.partition(";")
    seconds = head.split("(", 1)[0]
    parse_nonneg_int(seconds, "Retry-After", MAX_DELTA_SECONDS)
    if semi:
        parse_params(params)


def _parse_warning(value: str) -> None:
    """warning-value = warn-code SP warn-agent SP warn-text, warn-code = 3DIGIT (§20.43)."""
    parts = value.split(None, 2)
    if len(parts) != 3 or len(parts[0]) != 3 or not ascii_digits(parts[0]):
        raise ParseError(f"bad Warning {value[:60]!r}")


def _check_date(message: Message) -> None:
    """Date is an RFC 1123 date in GMT (§20.17, RFC 4475 §3.1.2.12)."""
    value = message.get("date")
    if value is None:
        return
    match = _DATE_RE.match(value)
    if match is None:
        raise ParseError(f"Date is not an RFC 1123 date in GMT: {value[:60]!r}")
    day, hour, minute, second = (int(match.group(i)) for i in (2, 5, 6, 7))
    if not 1 <= day <= 31 or hour > 23 or minute > 59 or second > 60:
        raise ParseError(f"Date out of range: {value[:60]!r}")
