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


_TOKEN_CLASS = r"[A-Za-z0-9!#$%&'*+\-.^_`|~]"
# auth-scheme, then the whitespace that must separate it from the first parameter.
_SCHEME = re.compile(rf"({_TOKEN_CLASS}+)([ \t]*)")
# Empty list elements and whitespace before a parameter (``a=1, ,b=2``, RFC 7230 §7).
_SEPARATORS = re.compile(r"[ \t,]*")
# One ``auth-param = token EQUAL ( token / quoted-string )`` (RFC 3261 §25.1) and
# what follows it: whitespace, then a comma (group 4) and empty list elements.
_PARAM = re.compile(
    rf"({_TOKEN_CLASS}+)[ \t]*=[ \t]*"
    r'(?:"((?:[^"\\]|\\.)*)"|([^\s,"=][^\s,"]*))'
    r"[ \t]*(,[ \t,]*)?",
    re.DOTALL,
)


def _normalise(value: str) -> str:
    """Unfold LWS (RFC 3261 §7.3.1) and refuse any other line break."""
    text = value
    if "\n" in text or "\r" in text:
        text = _FOLD.sub(" ", text)
        if "\r" in text or "\n" in text:
            raise DigestError("line break inside an authentication header value")
    return text.strip(" \t")


def _canonical_scheme(scheme: str) -> str:
    return "Digest" if scheme.lower() == "digest" else scheme


def _read_scheme(text: str) -> tuple[str, int]:
    """The scheme and the offset of what follows it."""
    match = _SCHEME.match(text)
    if match is None:
        raise DigestError("missing authentication scheme")
    scheme, space = match.groups()
    pos = match.end()
    if text.startswith("=", pos):
        raise DigestError(f"missing authentication scheme before parameter {scheme!r}")
    if pos < len(text) and not space:
        raise DigestError(f"expected whitespace after scheme {scheme!r}")
    return _canonical_scheme(scheme), pos


def _param_error(text: str, pos: int) -> DigestError:
    """Why no parameter could be read at ``pos`` (the regular expression failed)."""
    name = _TOKEN.match(text, pos)
    if name is None:
        return DigestError(f"expected a parameter name at offset {pos}")
    after = _WS.match(text, name.end())
    assert after is not None  # "*" always matches
    pos = after.end()
    if not text.startswith("=", pos):
        return DigestError(f"parameter {name.group()!r} has no value")
    after = _WS.match(text, pos + 1)
    assert after is not None
    pos = after.end()
    if text.startswith('"', pos):
        return DigestError("unbalanced quotes in authentication header")
    return DigestError(f"missing parameter value at offset {pos}")


def parse_auth_header(value: str) -> AuthHeader:
    """Parse a challenge or credentials value (RFC 3261 §25.1, RFC 7616 §3.3-3.4).

    Raises :class:`DigestError` on unbalanced quotes, a missing scheme, a
    parameter without a value, duplicate parameters, or a ``token68`` form
    (Basic), which SIP does not allow (RFC 3261 §22.1).
    """
    text = _normalise(value)
    scheme, pos = _read_scheme(text)
    params: dict[str, str] = {}
    end = len(text)
    separators = _SEPARATORS.match(text, pos)
    assert separators is not None  # "*" always matches
    pos = separators.end()
    param = _PARAM.match
    while pos < end:
        match = param(text, pos)
        if match is None:
            raise _param_error(text, pos)
        name, quoted, bare, comma = match.groups()
        name = name.lower()
        if name in params:
            raise DigestError(f"duplicate parameter {name!r}")
        if quoted is None:
            params[name] = bare
        elif "\\" in quoted:
            params[name] = _QUOTED_PAIR.sub(r"\1", quoted)
        else:
            params[name] = quoted
        pos = match.end()
        if comma is None and pos < end:
            raise DigestError(f"expected ',' at offset {pos}")
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
