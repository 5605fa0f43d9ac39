"""Digest arithmetic: hash algorithms, request-digest, and the client's Authorization.

RFC 2617 §3.2.2.1-3.2.2.3 (request-digest, A1, A2), RFC 7616 §3.4.1-3.4.3
(SHA-256 and SHA-512-256, the ``-sess`` variants), RFC 8760 §2 (those
algorithms in SIP), RFC 2069 §2.1.2 (the digest without ``qop``).
Strings are hashed as UTF-8 (RFC 7616 §3.4.4 ``charset=UTF-8``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from callway.sip.digest_header import (
    CREDENTIALS_UNQUOTED,
    AuthHeader,
    DigestError,
    format_auth_header,
    parse_qop_options,
)

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "SUPPORTED_QOP",
    "Algorithm",
    "build_authorization",
    "compute_ha1",
    "compute_response",
    "lookup_algorithm",
    "select_challenge",
]


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One entry of the IANA "HTTP Digest Hash Algorithms" registry (RFC 7616 §6.1)."""

    name: str
    hash_name: str
    session: bool

    def digest(self, *parts: str | bytes) -> str:
        """``H(p1:p2:...)`` as lower-case hex (RFC 7616 §3.4.1, RFC 8760 §2.2).

        ``surrogateescape``: header values decoded that way from non-UTF-8
        wire bytes hash as those bytes (never a UnicodeEncodeError).
        """
        data = b":".join(
            p.encode("utf-8", "surrogateescape") if isinstance(p, str) else p for p in parts
        )
        return hashlib.new(self.hash_name, data).hexdigest()

    @property
    def hex_length(self) -> int:
        """Length of ``H(...)`` in hex characters (32 for MD5, 64 for the SHA-2 ones)."""
        return hashlib.new(self.hash_name).digest_size * 2


_REGISTRY = (
    Algorithm("MD5", "md5", session=False),
    Algorithm("MD5-sess", "md5", session=True),
    Algorithm("SHA-256", "sha256", session=False),
    Algorithm("SHA-256-sess", "sha256", session=True),
    Algorithm("SHA-512-256", "sha512_256", session=False),
    Algorithm("SHA-512-256-sess", "sha512_256", session=True),
)
_BY_NAME = {algorithm.name.upper(): algorithm for algorithm in _REGISTRY}

#: Canonical algorithm names this module computes.
SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(algorithm.name for algorithm in _REGISTRY)
#: ``qop`` values understood (RFC 7616 §3.3).
SUPPORTED_QOP: tuple[str, ...] = ("auth", "auth-int")


def lookup_algorithm(name: str | None) -> Algorithm:
    """The algorithm named ``name`` (case-insensitive); absent means MD5 (RFC 7616 §3.3)."""
    algorithm = _BY_NAME.get((name or "MD5").upper())
    if algorithm is None:
        raise DigestError(f"unsupported digest algorithm {name!r}")
    return algorithm


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``H(username:realm:password)``, the value Asterisk stores as ``md5_cred``.

    RFC 7616 §3.4.2 (for the non-session algorithms this *is* ``H(A1)``).
    """
    return lookup_algorithm(algorithm).digest(username, realm, password)


def _session_ha1(algorithm: Algorithm, ha1: str, nonce: str, cnonce: str | None) -> str:
    """``H(A1)`` for ``-sess``: ``H(H(user:realm:pass):nonce:cnonce)`` (RFC 7616 §3.4.2)."""
    if not algorithm.session:
        return ha1
    if cnonce is None:
        raise DigestError(f"{algorithm.name} needs a cnonce")
    return algorithm.digest(ha1, nonce, cnonce)


def _ha2(algorithm: Algorithm, method: str, uri: str, qop: str | None, body: bytes) -> str:
    """``H(A2)`` (RFC 7616 §3.4.3): ``method:uri``, plus ``:H(body)`` for auth-int."""
    if qop is not None and qop.lower() == "auth-int":
        return algorithm.digest(method, uri, algorithm.digest(body))
    return algorithm.digest(method, uri)


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str | None,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
    ha1: str | None = None,
) -> str:
    """The ``response`` parameter (request-digest), RFC 7616 §3.4.1 / RFC 2617 §3.2.2.1.

    With ``qop``: ``H(HA1:nonce:nc:cnonce:qop:HA2)``; without: ``H(HA1:nonce:HA2)``
    (RFC 2069). ``ha1`` replaces ``password`` with a stored
    ``H(username:realm:password)`` in the same hash as ``algorithm``.
    """
    alg = lookup_algorithm(algorithm)
    if qop is not None and qop.lower() not in SUPPORTED_QOP:
        raise DigestError(f"unsupported qop {qop!r}")
    base = ha1.lower() if ha1 is not None else _ha1_from_password(alg, username, realm, password)
    session_ha1 = _session_ha1(alg, base, nonce, cnonce)
    ha2 = _ha2(alg, method, uri, qop, body)
    if qop is None:
        return alg.digest(session_ha1, nonce, ha2)
    if nc is None or cnonce is None:
        raise DigestError("qop requires nc and cnonce")
    return alg.digest(session_ha1, nonce, nc, cnonce, qop, ha2)


def _ha1_from_password(alg: Algorithm, username: str, realm: str, password: str | None) -> str:
    if password is None:
        raise DigestError("either password or ha1 is required")
    return alg.digest(username, realm, password)


def _choose_qop(challenge: AuthHeader) -> str | None:
    """Prefer ``auth`` over ``auth-int`` (RFC 7616 §3.3); None if the challenge has no qop."""
    offered = challenge.params.get("qop")
    if offered is None:
        return None
    options = parse_qop_options(offered)
    for qop in SUPPORTED_QOP:
        if qop in options:
            return qop
    raise DigestError(f"no supported qop in {offered!r}")


def select_challenge(challenges: Iterable[AuthHeader]) -> AuthHeader | None:
    """The topmost Digest challenge whose algorithm we support (RFC 8760 §2.4)."""
    for challenge in challenges:
        if challenge.is_digest and challenge.params.get("algorithm", "MD5").upper() in _BY_NAME:
            return challenge
    return None


def build_authorization(
    challenge: AuthHeader,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """An ``Authorization`` / ``Proxy-Authorization`` value answering ``challenge``.

    RFC 3261 §22.2 and §22.4, RFC 7616 §3.4. Raises :class:`DigestError` when the
    challenge is not Digest, lacks realm or nonce, or asks for something unsupported.
    """
    if not challenge.is_digest:
        raise DigestError(f"cannot answer a {challenge.scheme} challenge")
    realm, nonce = challenge.params.get("realm"), challenge.params.get("nonce")
    if realm is None or nonce is None:
        raise DigestError("challenge lacks realm or nonce")
    if not 0 < nc <= 0xFFFFFFFF:
        raise DigestError(f"nonce count {nc} out of range")
    alg = lookup_algorithm(challenge.params.get("algorithm"))
    qop = _choose_qop(challenge)
    nc_text = f"{nc:08x}"
    response = compute_response(
        algorithm=alg.name,
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    params = {"username": username, "realm": realm, "nonce": nonce, "uri": uri}
    params |= {"response": response, "algorithm": alg.name}
    if qop is not None or alg.session:
        params["cnonce"] = cnonce
    if qop is not None:
        params["qop"] = qop
        params["nc"] = nc_text
    if "opaque" in challenge.params:
        params["opaque"] = challenge.params["opaque"]
    return format_auth_header(AuthHeader("Digest", params), unquoted=CREDENTIALS_UNQUOTED)
