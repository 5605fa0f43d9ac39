"""HTTP digest authentication for SIP, sans-I/O (RFC 3261 §22, RFC 7616, RFC 8760).

The public face of the ``digest_*`` modules, plus the server's decision,
:func:`verify_credentials`. Typical UAS use::

    nonces = NonceManager(secret)
    challenge = format_challenge("asterisk", nonces.issue(now))        # 401
    creds = parse_auth_header(authorization_value)
    result = verify_credentials(creds, method="REGISTER", password=pw, ha1=None,
                                realm="asterisk", nonces=nonces, now=now)

The caller (not this module) checks that ``creds.params["uri"]`` matches the
Request-URI (RFC 7616 §3.4.6) and maps results to responses: OK -> go on;
STALE -> 401 with ``stale=true``; BAD_NONCE / REPLAY -> 401 with a new nonce;
BAD_RESPONSE -> 401 and a :class:`FailureTracker` failure (403 once blocked);
MALFORMED -> 400.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Iterable

from callway.sip.digest_compute import (
    SUPPORTED_ALGORITHMS,
    SUPPORTED_QOP,
    Algorithm,
    build_authorization,
    compute_ha1,
    compute_response,
    lookup_algorithm,
    select_challenge,
)
from callway.sip.digest_header import (
    CHALLENGE_UNQUOTED,
    CREDENTIALS_UNQUOTED,
    AuthHeader,
    DigestError,
    format_auth_header,
    format_challenge,
    parse_auth_header,
    parse_qop_options,
)
from callway.sip.digest_nonce import FailureTracker, NonceManager, NonceStatus

__all__ = [
    "CHALLENGE_UNQUOTED",
    "CREDENTIALS_UNQUOTED",
    "SUPPORTED_ALGORITHMS",
    "SUPPORTED_QOP",
    "Algorithm",
    "AuthHeader",
    "AuthResult",
    "DigestError",
    "FailureTracker",
    "NonceManager",
    "NonceStatus",
    "build_authorization",
    "compute_ha1",
    "compute_response",
    "format_auth_header",
    "format_challenge",
    "lookup_algorithm",
    "parse_auth_header",
    "parse_qop_options",
    "select_challenge",
    "select_credentials",
    "verify_credentials",
]

_REQUIRED = ("username", "realm", "nonce", "uri", "response")
_NC_SHAPE = re.compile(r"[0-9A-Fa-f]{8}")


class AuthResult(enum.Enum):
    """Outcome of :func:`verify_credentials` (RFC 3261 §22.4, RFC 7616 §3.3)."""

    OK = "ok"
    STALE = "stale"  # right password, expired nonce: 401 with stale=true
    BAD_RESPONSE = "bad_response"  # wrong password (or wrong stored ha1)
    BAD_NONCE = "bad_nonce"  # nonce not issued by us
    MALFORMED = "malformed"  # not Digest, missing params, other realm, unsupported
    REPLAY = "replay"  # nonce-count not increasing


def select_credentials(headers: Iterable[AuthHeader], realm: str) -> AuthHeader | None:
    """The first Digest credentials for ``realm`` (RFC 3261 §22.3, RFC 8760 §2.3)."""
    for header in headers:
        if header.is_digest and header.params.get("realm") == realm:
            return header
    return None


def _qop_fields(params: dict[str, str]) -> tuple[str | None, str | None] | None:
    """``(qop, nc)`` when consistent (RFC 7616 §3.4), None when malformed."""
    qop = params.get("qop")
    if qop is None:
        return None, None
    nc = params.get("nc")
    if qop.lower() not in SUPPORTED_QOP or "cnonce" not in params:
        return None
    if nc is None or _NC_SHAPE.fullmatch(nc) is None:
        return None
    return qop, nc


def _well_formed(creds: AuthHeader, realm: str) -> Algorithm | None:
    """The algorithm to verify with, or None when the credentials are unusable."""
    params = creds.params
    if not creds.is_digest or any(name not in params for name in _REQUIRED):
        return None
    if not params["username"] or not params["nonce"] or params["realm"] != realm:
        return None
    if params.get("userhash", "false").lower() != "false":
        return None  # RFC 7616 §3.4.4 username hashing: not offered, not accepted
    try:
        algorithm = lookup_algorithm(params.get("algorithm"))
    except DigestError:
        return None
    if algorithm.session and "cnonce" not in params:
        return None
    return algorithm


def _response_matches(
    creds: AuthHeader,
    algorithm: Algorithm,
    *,
    method: str,
    password: str | None,
    ha1: str | None,
    qop: str | None,
    nc: str | None,
    body: bytes,
) -> bool:
    if password is None and ha1 is None:
        raise ValueError("verify_credentials needs a password or an ha1")
    if password is None and ha1 is not None and len(ha1) != algorithm.hex_length:
        return False  # stored credential is in another hash (e.g. md5_cred vs SHA-256)
    p = creds.params
    expected = compute_response(
        algorithm=algorithm.name,
        username=p["username"],
        realm=p["realm"],
        password=password,
        method=method,
        uri=p["uri"],
        nonce=p["nonce"],
        qop=qop,
        nc=nc,
        cnonce=p.get("cnonce"),
        body=body,
        ha1=ha1,
    )
    response = p["response"].lower().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected.encode(), response)


def verify_credentials(
    creds: AuthHeader,
    *,
    method: str,
    password: str | None,
    ha1: str | None,
    realm: str,
    nonces: NonceManager,
    now: float,
    body: bytes = b"",
) -> AuthResult:
    """Decide on one ``Authorization`` / ``Proxy-Authorization`` (RFC 3261 §22.4).

    Order: shape (MALFORMED), nonce is ours (BAD_NONCE), response is right
    (BAD_RESPONSE), then freshness (STALE, only with a right response, as RFC 7616
    §3.3 asks of ``stale=true``) and nonce-count (REPLAY). The nonce-count is
    recorded only for a right response, so a forged request cannot burn a
    client's nonce. ``ha1`` is ``H(username:realm:password)`` in the hash of the
    client's algorithm (Asterisk ``md5_cred``); ``body`` is needed for auth-int.
    The ``uri`` parameter is not compared with the Request-URI here.
    """
    algorithm = _well_formed(creds, realm)
    fields = _qop_fields(creds.params)
    if algorithm is None or fields is None:
        return AuthResult.MALFORMED
    qop, nc = fields
    nonce = creds.params["nonce"]
    status = nonces.peek(nonce, nc, now)
    if status is NonceStatus.INVALID:
        return AuthResult.BAD_NONCE
    matched = _response_matches(
        creds, algorithm, method=method, password=password, ha1=ha1, qop=qop, nc=nc, body=body
    )
    if not matched:
        return AuthResult.BAD_RESPONSE
    if status is NonceStatus.STALE:
        return AuthResult.STALE
    if status is NonceStatus.REPLAY:
        return AuthResult.REPLAY
    nonces.check(nonce, nc, now)
    return AuthResult.OK
