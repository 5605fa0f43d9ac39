"""Digest header values: parse and format challenges and credentials.

Works on the header *value* (the text after ``WWW-Authenticate:``,
``Proxy-Authenticate:``, ``Authorization:`` or ``Proxy-Authorization:``),
never on a message object.

Grammar: RFC 3261 §25.1 (``challenge``, ``credentials``, ``auth-param``,
``quoted-string``, ``EQUAL`` / ``COMMA`` with optional whitespace), RFC 7616
§3.3 and §3.4 (which parameters are quoted), RFC 3261 §7.3.1 (header folding
is replaced by a single space before the value is interpreted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "CHALLENGE_UNQUOTED",
    "CREDENTIALS_UNQUOTED",
    "AuthHeader",
    "DigestError",
    "format_auth_header",
    "format_challenge",
    "parse_auth_header",
    "parse_qop_options",
]


class DigestError(ValueError):
    """A malformed digest header value, or parameters the digest scheme cannot use."""


# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
# RFC 7230 §3.2.6 adds "#$&^|"; accept the union when reading, it costs nothing.
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_WS = re.compile(r"[ \t]*")
# RFC 3261 §7.3.1: a line fold (CRLF followed by whitespace) is equivalent to SP.
_FOLD = re.compile(r"[ \t]*\r?\n[ \t]+")
# Unquoted values: a token in the grammar; tolerate anything up to the next separator
# (real phones send e.g. ``uri=sip:8005@host`` unquoted).
_BARE_VALUE = re.compile(r'[^\s,"=][^\s,"]*')
_QUOTED_BODY = re.compile(r'(?:[^"\\]|\\.)*', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_NEEDS_ESCAPE = re.compile(r'(["\\])')

#: Parameters written without quotes in a challenge (RFC 7616 §3.3).
CHALLENGE_UNQUOTED = frozenset({"algorithm", "stale", "charset", "userhash"})
#: Parameters written without quotes in credentials (RFC 7616 §3.4, RFC 2617 §3.2.2).
CREDENTIALS_UNQUOTED = frozenset({"algorithm", "qop", "nc", "userhash"})


@dataclass(frozen=True, slots=True)
class AuthHeader:
    """One challenge or credentials value: ``scheme`` plus ``auth-param`` list.

    ``params`` keys are lower-case; values are unquoted and unescaped. The scheme
    ``Digest`` is normalised to that spelling whatever case it arrived in
    (auth-scheme is case-insensitive, RFC 7235 §2.1).
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def is_digest(self) -> bool:
        """True when the scheme is ``Digest`` (RFC 3261 §22.4)."""
        return self.scheme == "Digest"


class _Scanner:
    """Cursor over a normalised header value."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> bool:
        """Skip spaces and tabs; True if any were skipped."""
        end = _WS.match(self.text, self.pos)
        assert end is not None  # "*" always matches
        skipped = end.end() > self.pos
        self.pos = end.end()
        return skipped

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos)
        if match is None or match.end() == self.pos:
            return None
        self.pos = match.end()
        return match.group()


def _normalise(value: str) -> str:
    """Unfold LWS (RFC 3261 §7.3.1) and refuse any other line break."""
    text = _FOLD.sub(" ", value)
    if "\r" in text or "\n" in text:
        raise DigestError("line break inside an authentication header value")
    return text.strip(" \t")


def _canonical_scheme(scheme: str) -> str:
    return "Digest" if scheme.lower() == "digest" else scheme


def _read_scheme(scan: _Scanner) -> str:
    scheme = scan.take(_TOKEN)
    if scheme is None:
        raise DigestError("missing authentication scheme")
    had_space = scan.skip_ws()
    if scan.peek() == "=":
        raise DigestError(f"missing authentication scheme before parameter {scheme!r}")
    if not scan.at_end() and not had_space:
        raise DigestError(f"expected whitespace after scheme {scheme!r}")
    return _canonical_scheme(scheme)


def _read_quoted(scan: _Scanner) -> str:
    """``quoted-string`` (RFC 3261 §25.1): DQUOTE *(qdtext / quoted-pair) DQUOTE."""
    scan.pos += 1  # opening quote
    body = scan.take(_QUOTED_BODY) or ""
    if scan.peek() != '"':
        raise DigestError("unbalanced quotes in authentication header")
    scan.pos += 1
    return _QUOTED_PAIR.sub(r"\1", body)


def _read_value(scan: _Scanner) -> str:
    if scan.peek() == '"':
        return _read_quoted(scan)
    value = scan.take(_BARE_VALUE)
    if value is None:
        raise DigestError(f"missing parameter value at offset {scan.pos}")
    return value


def _read_param(scan: _Scanner) -> tuple[str, str]:
    """``auth-param = token EQUAL ( token / quoted-string )`` (RFC 3261 §25.1)."""
    name = scan.take(_TOKEN)
    if name is None:
        raise DigestError(f"expected a parameter name at offset {scan.pos}")
    scan.skip_ws()
    if scan.peek() != "=":
        raise DigestError(f"parameter {name!r} has no value")
    scan.pos += 1
    scan.skip_ws()
    return name.lower(), _read_value(scan)


def _skip_separators(scan: _Scanner) -> None:
    """Skip whitespace and empty list elements (``a=1, ,b=2``, RFC 7230 §7)."""
    scan.skip_ws()
    while scan.peek() == ",":
        scan.pos += 1
        scan.skip_ws()


def parse_auth_header(value: str) -> AuthHeader:
    """Parse a challenge or credentials value (RFC 3261 §25.1, RFC 7616 §3.3-3.4).

    Raises :class:`DigestError` on unbalanced quotes, a missing scheme, a
    parameter without a value, duplicate parameters, or a ``token68`` form
    (Basic), which SIP does not allow (RFC 3261 §22.1).
    """
    scan = _Scanner(_normalise(value))
    scheme = _read_scheme(scan)
    params: dict[str, str] = {}
    _skip_separators(scan)
    while not scan.at_end():
        name, param_value = _read_param(scan)
        if name in params:
            raise DigestError(f"duplicate parameter {name!r}")
        params[name] = param_value
        scan.skip_ws()
        if not scan.at_end() and scan.peek() != ",":
            raise DigestError(f"expected ',' at offset {scan.pos}")
        _skip_separators(scan)
    return AuthHeader(scheme, params)


def _quote(value: str) -> str:
    """Write ``value`` as a ``quoted-string``, escaping ``"`` and ``\\``."""
    if "\r" in value or "\n" in value:
        raise DigestError("a header parameter cannot contain a line break")
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", value) + '"'


def _format_param(name: str, value: str, unquoted: frozenset[str]) -> str:
    if _TOKEN.fullmatch(name) is None:
        raise DigestError(f"parameter name {name!r} is not a token")
    if name.lower() in unquoted and _TOKEN.fullmatch(value) is not None:
        return f"{name}={value}"
    return f"{name}={_quote(value)}"


def format_auth_header(
    header: AuthHeader, *, unquoted: frozenset[str] = CREDENTIALS_UNQUOTED
) -> str:
    """Write ``header`` back as a header value (RFC 3261 §25.1).

    Parameters named in ``unquoted`` are written bare when they are tokens;
    everything else is a quoted string. Order follows ``header.params``.
    """
    if _TOKEN.fullmatch(header.scheme) is None:
        raise DigestError(f"scheme {header.scheme!r} is not a token")
    parts = [_format_param(name, value, unquoted) for name, value in header.params.items()]
    return f"{header.scheme} {','.join(parts)}" if parts else header.scheme


def format_challenge(
    realm: str,
    nonce: str,
    *,
    algorithm: str = "MD5",
    qop: str | None = "auth",
    opaque: str | None = None,
    stale: bool = False,
) -> str:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 7616 §3.3, RFC 3261 §22.4).

    ``qop`` is the quoted ``qop-options`` list (``"auth"`` or ``"auth,auth-int"``);
    ``None`` leaves it out (RFC 2069 compatibility). ``stale=True`` tells the
    client to retry with the new nonce without asking its user (RFC 7616 §3.3).
    """
    params: dict[str, str] = {"realm": realm, "nonce": nonce}
    if opaque is not None:
        params["opaque"] = opaque
    params["algorithm"] = algorithm
    if qop is not None:
        params["qop"] = qop
    if stale:
        params["stale"] = "true"
    return format_auth_header(AuthHeader("Digest", params), unquoted=CHALLENGE_UNQUOTED)


def parse_qop_options(value: str) -> tuple[str, ...]:
    """Split a challenge's ``qop-options`` (``"auth,auth-int"``) into lower-case values."""
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())
