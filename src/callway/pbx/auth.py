"""Endpoint identification and digest authentication of requests (RFC 3261 §22).

The endpoint is identified in the order of ``endpoint_identifier_order``
(``[global]``, Asterisk's default ``ip,username,anonymous``): by source
address or header through ``type=identify`` sections
(:mod:`callway.pbx.identify`), then the way chan_pjsip's
``identify_by=username`` does, by the user part of the From URI, falling back
to the digest ``username``.  An endpoint is only found in the ways its
``identify_by`` lists, so a trunk with ``identify_by=ip`` and no ``auth=``
cannot be reached by writing its name in a From header.  Unknown users are
challenged and then refused exactly like a wrong password, so an attacker
cannot tell which extensions exist.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from callway.core.address import Address
from callway.pbx.identify import SourceIdentifier
from callway.pbx.model import Auth, Endpoint, Network, PjsipConfig
from callway.sip.digest import (
    AuthHeader,
    AuthResult,
    DigestError,
    FailureTracker,
    NonceManager,
    format_challenge,
    parse_auth_header,
    select_credentials,
    verify_credentials,
)
from callway.sip.message import Request, Response, make_response
from callway.sip.uri import SipURI

# Stand-in secret for unknown users: keeps the work (and timing) of a check
# for an unknown user the same as for a known one with a wrong password.
_DUMMY_PASSWORD = secrets.token_hex(16)


def config_secret(config: PjsipConfig) -> bytes:
    """A nonce key every PBX node with the same pjsip.conf derives alike.

    Behind a balancer the credentials of a request may reach another node
    than the one that challenged it (Kamailio's algorithm 9 picks per
    request); a shared key lets any node verify any node's nonce (RFC 7616
    §3.3 leaves the nonce's construction to the server).  The key is secret
    as long as the passwords are.
    """
    material = hashlib.sha256(b"callway-nonce-v1")
    for name in sorted(config.auths):
        auth = config.auths[name]
        material.update(f"{name}\0{auth.username}\0{auth.password}\0{auth.md5_cred}\0".encode())
    return material.digest()


class _RandomTags:
    """Hex tags cut from a block of ``os.urandom``: one system call per 512 tags."""

    __slots__ = ("_block", "_offset")

    _SIZE = 6
    _BLOCK = 512 * _SIZE

    def __init__(self) -> None:
        self._block = b""
        self._offset = 0

    def next(self) -> str:
        offset = self._offset
        if offset >= len(self._block):
            self._block = secrets.token_bytes(self._BLOCK)
            offset = 0
        self._offset = offset + self._SIZE
        return self._block[offset : offset + self._SIZE].hex()


_TAGS = _RandomTags()


@dataclass(slots=True)
class AuthOutcome:
    """Who sent the request, or the response that ends its processing."""

    endpoint: Endpoint | None
    response: Response | None = None


class Authenticator:
    """Challenges and verifies requests against the ``type=auth`` objects."""

    def __init__(
        self,
        config: PjsipConfig,
        *,
        secret: bytes | None = None,
        nonce_lifetime: float = 30.0,
        user_failures: FailureTracker | None = None,
        source_failures: FailureTracker | None = None,
        algorithms: tuple[str, ...] = ("MD5",),
    ) -> None:
        self.config = config
        #: ``match=`` host names of identify sections, resolved by the shell.
        self.resolved_hosts: dict[str, tuple[Network, ...]] = {}
        empty = SourceIdentifier(PjsipConfig())
        self._sources: tuple[PjsipConfig | None, SourceIdentifier] = (None, empty)
        self.realm = config.global_.default_realm or "asterisk"
        # RFC 8760 §2.4: one challenge per algorithm, the preferred (strongest) first.
        self.algorithms = algorithms
        self.nonces = NonceManager(secret or config_secret(config), lifetime=nonce_lifetime)
        # A user is banned at one source address after 3 bad passwords a
        # minute (fail2ban's spirit; keyed by source so an attacker cannot lock
        # out the real phone); a source address, which may be a NAT shared by
        # many phones, after 20 failures of any users.
        self.user_failures = user_failures or FailureTracker(max_failures=3, ban=60.0)
        self.source_failures = source_failures or FailureTracker(max_failures=20, ban=300.0)

    @staticmethod
    def tag() -> str:
        """A fresh To tag for locally generated final responses (§19.3): 48 random bits."""
        return _TAGS.next()

    def sources(self) -> SourceIdentifier:
        """The identify sections of the running configuration (rebuilt after a reload)."""
        config, identifier = self._sources
        if config is not self.config:
            identifier = SourceIdentifier(self.config, self.resolved_hosts)
            self._sources = (self.config, identifier)
        return identifier

    def identify(
        self, request: Request, creds: AuthHeader | None, source: Address | None = None
    ) -> Endpoint | None:
        """The endpoint a request comes from (see the module docstring)."""
        for way in self.config.global_.endpoint_identifier_order:
            if way == "ip" and source is not None:
                identifier = self.sources()
                if identifier:
                    endpoint = identifier.identify(source.host, request.get_all)
                    if endpoint is not None:
                        return endpoint
            elif way == "username":
                endpoint = self._by_username(request, creds)
                if endpoint is not None:
                    return endpoint
        return None

    def _by_username(self, request: Request, creds: AuthHeader | None) -> Endpoint | None:
        """By From user (``identify_by`` username), then digest username (or auth_username)."""
        endpoints = self.config.endpoints
        from_uri = request.from_.uri
        if isinstance(from_uri, SipURI) and from_uri.user:
            endpoint = endpoints.get(from_uri.user)
            if endpoint is not None and "username" in endpoint.identify_by:
                return endpoint
        if creds is not None:
            endpoint = endpoints.get(creds.params.get("username", ""))
            if endpoint is not None and _by_name(endpoint):
                return endpoint
        return None

    def check(self, request: Request, source: Address, now: float) -> AuthOutcome:
        """Authenticate ``request``; the outcome carries a 401/403/400 if it fails."""
        creds = None
        values = request.get_all("authorization")
        if values:
            try:
                creds = select_credentials((parse_auth_header(v) for v in values), self.realm)
            except DigestError:
                return AuthOutcome(None, make_response(request, 400, "Bad Authorization"))
        endpoint = self.identify(request, creds, source)
        user = creds.params.get("username", "") if creds else ""
        if self._blocked(source, user, now):
            return AuthOutcome(None, make_response(request, 403, "Forbidden", to_tag=self.tag()))
        if endpoint is not None and not endpoint.auth:
            return AuthOutcome(endpoint)
        if creds is None:
            return AuthOutcome(None, self.challenge(request, now))
        auth = self._auth_for(endpoint, user)
        result = verify_credentials(
            creds,
            method=request.method,
            password=_DUMMY_PASSWORD if auth is None else auth.password or None,
            ha1=auth.md5_cred if auth is not None and auth.auth_type == "md5" else None,
            realm=self.realm,
            nonces=self.nonces,
            now=now,
            body=request.body,
        )
        if result is AuthResult.OK and auth is not None:
            self.user_failures.record_success(f"{source.host}/{user}")
            return AuthOutcome(endpoint)
        return AuthOutcome(None, self._refuse(request, source, user, result, now))

    def challenge(self, request: Request, now: float, *, stale: bool = False) -> Response:
        """A 401 with a fresh nonce (RFC 3261 §22.1)."""
        response = make_response(request, 401, "Unauthorized", to_tag=self.tag())
        opaque = hashlib.md5(request.call_id.encode(), usedforsecurity=False).hexdigest()
        nonce = self.nonces.issue(now)
        for algorithm in self.algorithms:
            response.add(
                "WWW-Authenticate",
                format_challenge(
                    self.realm, nonce, algorithm=algorithm, opaque=opaque, stale=stale
                ),
            )
        return response

    def _auth_for(self, endpoint: Endpoint | None, user: str) -> Auth | None:
        if endpoint is None:
            return None
        for name in endpoint.auth:
            auth = self.config.auths.get(name)
            if auth is not None and (auth.username or auth.name) == user:
                return auth
        return None

    def _blocked(self, source: Address, user: str, now: float) -> bool:
        if self.source_failures.is_blocked(source.host, now):
            return True
        return bool(user) and self.user_failures.is_blocked(f"{source.host}/{user}", now)

    def _refuse(
        self, request: Request, source: Address, user: str, result: AuthResult, now: float
    ) -> Response:
        if result is AuthResult.MALFORMED:
            return make_response(request, 400, "Bad Authorization", to_tag=self.tag())
        if result is AuthResult.STALE:
            return self.challenge(request, now, stale=True)
        if result in (AuthResult.BAD_NONCE, AuthResult.REPLAY):
            return self.challenge(request, now)
        self.source_failures.record_failure(source.host, now)
        if user:
            self.user_failures.record_failure(f"{source.host}/{user}", now)
        if self._blocked(source, user, now):
            return make_response(request, 403, "Forbidden", to_tag=self.tag())
        return self.challenge(request, now)


def _by_name(endpoint: Endpoint) -> bool:
    """Whether ``identify_by`` lets the endpoint be found by its digest username."""
    ways = endpoint.identify_by
    return "username" in ways or "auth_username" in ways
