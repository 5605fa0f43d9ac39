"""REGISTER answered straight from its bytes: the registrar's fast path (RFC 3261 §10.3).

A registrar under load answers thousands of REGISTERs a second that look
alike: one Via, one Contact, no credentials for an endpoint without auth, no
body.  For those, :class:`FastRegistrar` reads the few header values it needs
from the datagram, holds each to a narrow pattern, applies the binding with
the same :meth:`Registrar.bind` as the ordinary path and writes the 200 OK's
bytes itself.  It skips the :class:`~callway.sip.message.Request` object, the
generic validation and the server transaction object; the response still
rests in the transaction layer until Timer J (§17.2.2), so a retransmitted
REGISTER gets it again instead of registering twice.

Everything else returns None before any state changed, and the message takes
the ordinary path, which answers it with every RFC 3261 / RFC 4475 check:

* another header (Authorization, Require, Path, Route, Date, Content-Type...),
  a repeated or folded one, a spelling not in :data:`_NAMES`, a body, bytes
  that are not ASCII, a stream transport;
* a value outside its pattern (a Via list, several Contacts, Contact
  parameters besides ``expires``, a To tag, an RFC 2543 branch, ...);
* an endpoint with ``auth=``, an unknown user or AOR, a source banned for
  failed logins, ``Expires: 0``, an expiration below ``minimum_expiration``;
* any refusal of :meth:`Registrar.bind` (out-of-order CSeq, too many contacts).

The unit tests hold both paths to byte-identical responses.  One difference
is not on the wire: the registrar's log lines ("Added contact ...") written
from here carry no Call-ID context (the ordinary path's transaction user sets
it).  Sans-I/O.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import NamedTuple

from callway.core.address import Address
from callway.pbx.nat import rewrite_contact_uri
from callway.pbx.registrar import ContactRequest, Registrar
from callway.sip.errors import ParseError
from callway.sip.headers import parse_via
from callway.sip.transaction import ServerTransactionKey, TransactionLayer
from callway.sip.transaction.builders import MAGIC_COOKIE
from callway.sip.transaction.matching import sent_by
from callway.sip.uri import SipURI, parse_uri

# Header spellings the fast path reads -> (key, canonical name in the response).
_CANONICAL = {
    "via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq",
    "contact": "Contact", "max-forwards": "Max-Forwards", "expires": "Expires",
    "user-agent": "User-Agent", "content-length": "Content-Length", "allow": "Allow",
    "supported": "Supported", "allow-events": "Allow-Events",
}  # fmt: skip
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "l": "content-length", "k": "supported", "u": "allow-events"}  # fmt: skip
_NAMES: dict[str, str] = {
    **{name: key for key, name in _CANONICAL.items()},
    **{key: key for key in _CANONICAL},
    "Call-Id": "call-id", "Cseq": "cseq", "Max-forwards": "max-forwards",
    "User-agent": "user-agent", "Content-length": "content-length",
    **_COMPACT,
}  # fmt: skip
_MANDATORY = frozenset({"via", "from", "to", "call-id", "cseq", "contact"})
_COPIED = frozenset({"via", "from", "to", "call-id", "cseq"})  # into the response (§8.2.6.2)

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_DISPLAY = r'(?:"[^"\\;]*" ?)?'  # a quoted display name without escapes or ";"
_URI = r"<(sips?:[^<>\"\s,;?]+(?:;[^<>\"\s,?]*)?)>"
_FROM_RE = re.compile(f"{_DISPLAY}{_URI};tag={_TOKEN}")
_TO_RE = re.compile(f"{_DISPLAY}{_URI}")
_CONTACT_RE = re.compile(f"{_DISPLAY}{_URI}(?:;expires=([0-9]{{1,10}}))?")
# parse_via's own common shape, with a branch alone: nothing to parse or stamp.
_PLAIN_VIA_RE = re.compile(
    rf"SIP/2\.0/UDP ([A-Za-z0-9_\-.]+)(?::([0-9]{{1,5}}))?;branch=({MAGIC_COOKIE}{_TOKEN})"
)
# A SIP URI that parse_uri reads and str() writes back unchanged (no need to parse a
# new contact): lower-case scheme, a port 1-65535 without leading zero, at most one
# parameter with its name in lower case (a second one could repeat the name).
_CANONICAL_URI_RE = re.compile(
    r"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,]+@)?[A-Za-z0-9_\-.]+"
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"(?:;[^;?@\x00-\x20<>\"\x7f=A-Z]+(?:=[^;?@\x00-\x20<>\"\x7f]*)?)?"
)
_CSEQ_RE = re.compile(r"([0-9]{1,10}) REGISTER")
_WORD = r"""[A-Za-z0-9\-.!%*_+`'~()<>:\\"/\[\]?{}]+"""
_CALLID_RE = re.compile(f"{_WORD}(?:@{_WORD})?")  # §25.1 callid, as validate.py
_MAX_CSEQ = 2**31 - 1
_MAX_32 = 0xFFFFFFFF
_MEMO_MAX = 32768  # URIs memoised (cleared when full): phones repeat theirs
_UNKNOWN = "\0"  # not memoised yet (no URI's user contains a NUL)


class _Fields(NamedTuple):
    """What a REGISTER of the fast path's shape says."""

    values: dict[str, str]  # header values by key, in request order
    key: ServerTransactionKey
    via: str | None  # the top Via as the response carries it first (stamped), else None
    from_user: str
    aor_name: str
    contact: str  # the contact URI as the ordinary path stores it (str of parsed URI)
    contact_expires: int | None
    call_id: str
    cseq: int


class FastRegistrar:
    """The fast path in front of a :class:`Registrar` (a ``SipStack.fast_path``)."""

    def __init__(self, registrar: Registrar, layer: TransactionLayer, server: str) -> None:
        self.registrar = registrar
        self.layer = layer
        #: The Server header of our responses (what ``PbxCore.respond`` sets).
        self.server = server
        self.answered = 0  # REGISTERs answered here (the rest took the ordinary path)
        self._users: dict[str, str | None] = {}
        self._tos: dict[str, str | None] = {}
        self._contacts: dict[str, tuple[str, int | None] | None] = {}

    def handle(self, data: bytes, source: Address, now: float) -> bytes | None:
        """The 200 OK to send to ``source``; b"" for a retransmission; None: ordinary path."""
        if not data.startswith(b"REGISTER ") or source.transport != "udp":
            return None
        fields = self._read(data, source)
        if fields is None:
            return None
        key = fields.key
        seen = self.layer.absorb_retransmission(key)
        if seen is None:
            return None
        if seen:
            return b""
        response = self._answer(fields, source, now)
        if response is not None:
            self.layer.rest_final_response(key, response, source, now)
            self.answered += 1
        return response

    # -- reading -----------------------------------------------------------------

    def _read(self, data: bytes, source: Address) -> _Fields | None:
        end = data.find(b"\r\n\r\n")
        if end < 0 or end + 4 != len(data):
            return None  # a body, or bytes after the message: the ordinary path frames it
        try:
            text = data[:end].decode("ascii")
        except UnicodeDecodeError:
            return None
        lines = text.split("\r\n")
        request_line = lines.pop(0)
        if not request_line.endswith(" SIP/2.0") or self._user(request_line[9:-8]) is None:
            return None
        try:
            values = {
                _NAMES[name if colon else ""]: value.strip()  # "": a line without a colon
                for name, colon, value in map(str.partition, lines, repeat(":"))
            }
        except KeyError:
            return None  # a header the fast path does not read, or no header at all
        if len(values) != len(lines) or not values.keys() >= _MANDATORY:
            return None  # a repeated header, a mandatory one missing
        try:
            return self._fields(values, source)
        except (ParseError, ValueError):
            return None

    def _fields(self, values: dict[str, str], source: Address) -> _Fields | None:
        if not _scalars_ok(values):
            return None
        found = _via_key(values["via"], source)
        from_match = _FROM_RE.fullmatch(values["from"])
        cseq_match = _CSEQ_RE.fullmatch(values["cseq"])
        call_id = values["call-id"]
        if not (found and from_match and cseq_match):
            return None
        if not _CALLID_RE.fullmatch(call_id):
            return None
        from_user = self._user(from_match.group(1))
        to_user = self._to_user(values["to"])
        contact = self._contact(values["contact"])
        cseq = int(cseq_match.group(1))
        if not from_user or not to_user or contact is None or cseq > _MAX_CSEQ:
            return None  # no user to identify, no AOR: the ordinary path answers
        key, via = found
        return _Fields(values, key, via, from_user, to_user, contact[0], contact[1], call_id, cseq)

    def _to_user(self, value: str) -> str | None:
        """The AOR name of a To value (no tag: a REGISTER opens no dialog), else None.

        Memoised by the whole value: a phone's To never changes between refreshes.
        """
        memo = self._tos
        user = memo.get(value, _UNKNOWN)
        if user is not _UNKNOWN:
            return user
        match = _TO_RE.fullmatch(value)
        user = self._user(match.group(1)) if match else None
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[value] = user
        return user

    def _user(self, text: str) -> str | None:
        """The user part of a SIP URI without headers (§19.1.1; "" without a user), else None.

        Memoised by text: each phone repeats its URIs (the outcome only, not the URI).
        """
        memo = self._users
        user = memo.get(text, _UNKNOWN)
        if user is not _UNKNOWN:
            return user
        try:
            uri = parse_uri(text)
        except ParseError:
            uri = None
        valid = isinstance(uri, SipURI) and not uri.headers and " " not in text
        user = (uri.user or "") if valid and isinstance(uri, SipURI) else None
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[text] = user
        return user

    def _contact(self, value: str) -> tuple[str, int | None] | None:
        """A Contact value's URI as the ordinary path stores it, and its expires param.

        The URI is its parsed form re-serialised; None when the value is not of
        the fast path's shape or its expires is beyond delta-seconds (§25.1:
        400 on the ordinary path).  Memoised by the whole value.
        """
        memo = self._contacts
        if value in memo:
            return memo[value]
        found: tuple[str, int | None] | None = None
        match = _CONTACT_RE.fullmatch(value)
        if match is not None:
            uri, expires = match.groups()
            stored = uri if _CANONICAL_URI_RE.fullmatch(uri) else _reserialised(uri)
            if stored is not None and (expires is None or int(expires) <= _MAX_32):
                found = stored, None if expires is None else int(expires)
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[value] = found
        return found

    # -- answering -----------------------------------------------------------------

    def _answer(self, fields: _Fields, source: Address, now: float) -> bytes | None:
        registrar = self.registrar
        config = registrar.config
        endpoint = config.endpoints.get(fields.from_user)
        if endpoint is None or endpoint.auth or "username" not in endpoint.identify_by:
            return None  # unknown users and digest auth: the ordinary path (401/403)
        sources = registrar.auth.sources()
        if sources and (sources.by_header or sources.by_address(source.host) is not None):
            return None  # a type=identify section may claim it: the ordinary path decides
        if registrar.auth.source_failures.is_blocked(source.host, now):
            return None
        aor = config.aors.get(fields.aor_name)
        if aor is None or fields.aor_name not in endpoint.aors:
            return None
        expires = fields.contact_expires
        if expires is None:
            header = fields.values.get("expires")
            expires = aor.default_expiration if header is None else int(header)
        if expires <= 0 or expires < aor.minimum_expiration:
            return None  # un-registration, 423 Interval Too Brief
        if aor.maximum_expiration and expires > aor.maximum_expiration:
            expires = aor.maximum_expiration
        uri = fields.contact
        if endpoint.rewrite_contact:
            uri = rewrite_contact_uri(uri, source)
        wanted = [ContactRequest(uri, expires, {})]
        refusal = registrar.bind(
            aor, wanted, fields.call_id, fields.cseq, source, now, (),
            fields.values.get("user-agent") or "",
        )  # fmt: skip
        if refusal is not None:
            return None  # nothing changed: the ordinary path answers it
        return self._ok(fields, registrar.contact_values(aor, now))

    def _ok(self, fields: _Fields, contacts: list[str]) -> bytes:
        """The 200 OK as ``make_response`` + ``PbxCore.respond`` would serialise it."""
        stamped = fields.via
        # SipStack's stamping moved a stamped Via to the top (§18.2.1).
        lines = ["SIP/2.0 200 OK"] if stamped is None else ["SIP/2.0 200 OK", f"Via: {stamped}"]
        tag = self.registrar.auth.tag()
        lines += [
            f"To: {value};tag={tag}" if key == "to" else f"{_CANONICAL[key]}: {value}"
            for key, value in fields.values.items()
            if key in _COPIED and (stamped is None or key != "via")
        ]
        lines += [f"Contact: {value}" for value in contacts]
        lines.append(f"Server: {self.server}\r\nContent-Length: 0\r\n\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def _reserialised(uri: str) -> str | None:
    """``str(parse_uri(uri))``; None when it is not a URI."""
    try:
        return str(parse_uri(uri))
    except ParseError:
        return None


def _via_key(text: str, source: Address) -> tuple[ServerTransactionKey, str | None] | None:
    """The transaction key of a top Via, and the Via as stamped when it needs stamping.

    RFC 3261 §17.2.3 (``z9hG4bK`` branches only: RFC 2543 matching takes the
    ordinary path); ``received``/``rport`` as :func:`SipStack` adds them
    (§18.2.1, RFC 3581 §4).  The common ``SIP/2.0/UDP host:port;branch=...``
    from the address it names needs no :class:`Via` object.
    """
    match = _PLAIN_VIA_RE.fullmatch(text)
    if match is not None:
        host, port, branch = match.groups()
        number = 5060 if port is None else int(port)
        if host == source.host and 0 < number <= 65535:
            return ServerTransactionKey(branch, (host.lower(), number), "REGISTER"), None
    if "," in text:
        return None  # several Via values in one line
    via = parse_via(text)
    branch = via.branch
    if not branch or not branch.startswith(MAGIC_COOKIE):
        return None
    key = ServerTransactionKey(branch, sent_by(via), "REGISTER")
    needs_rport = "rport" in via.params and via.params["rport"] is None
    if via.host == source.host and not needs_rport:
        return key, None
    via.params["received"] = source.host
    if needs_rport:
        via.params["rport"] = str(source.port)
    return key, str(via)


def _scalars_ok(values: dict[str, str]) -> bool:
    """Max-Forwards 0-255, Expires 32 bits, Content-Length 0 (§20.22, §20.19, §20.14).

    The values were decoded as ASCII, so ``isdigit`` means ASCII digits.
    """
    text = values.get("max-forwards")
    if text is not None and not (len(text) <= 3 and text.isdigit() and int(text) <= 255):
        return False
    text = values.get("expires")
    if text is not None and not (len(text) <= 10 and text.isdigit() and int(text) <= _MAX_32):
        return False
    text = values.get("content-length")
    return text is None or text == "0"
