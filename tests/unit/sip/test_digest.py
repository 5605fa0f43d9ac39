"""Digest authentication: RFC vectors, server decisions, nonce and failure bookkeeping.

Vectors: RFC 2617 §3.5 and RFC 7616 §3.9.1. Time is a float stepped by hand.
"""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.sip.digest import (
    CHALLENGE_UNQUOTED,
    SUPPORTED_ALGORITHMS,
    AuthHeader,
    AuthResult,
    DigestError,
    FailureTracker,
    NonceManager,
    NonceStatus,
    build_authorization,
    compute_ha1,
    compute_response,
    format_auth_header,
    format_challenge,
    parse_auth_header,
    select_challenge,
    select_credentials,
    verify_credentials,
)

SECRET = b"0123456789abcdef0123456789abcdef"

# --- RFC 2617 §3.5 -------------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest\r\n                 realm="testrealm@host.com",\r\n'
    '                 qop="auth,auth-int",\r\n'
    '                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
    '                 opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_CREDENTIALS = (
    'Digest username="Mufasa",\r\n                 realm="testrealm@host.com",\r\n'
    '                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
    '                 uri="/dir/index.html",\r\n                 qop=auth,\r\n'
    '                 nc=00000001,\r\n                 cnonce="0a4f113b",\r\n'
    '                 response="6629fae49393a05397450978507c4ef1",\r\n'
    '                 opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_response_vector() -> None:
    response = compute_response(
        algorithm="MD5",
        username="Mufasa",
        realm="testrealm@host.com",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_folded_challenge_answered_like_the_rfc() -> None:
    challenge = parse_auth_header(RFC2617_CHALLENGE)
    value = build_authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    ours = parse_auth_header(value).params
    theirs = parse_auth_header(RFC2617_CREDENTIALS).params
    assert ours == theirs | {"algorithm": "MD5"}


def test_rfc2617_credentials_parse() -> None:
    creds = parse_auth_header(RFC2617_CREDENTIALS)
    assert creds.scheme == "Digest"
    assert creds.params["uri"] == "/dir/index.html"
    assert creds.params["qop"] == "auth"
    assert creds.params["nc"] == "00000001"


# --- RFC 7616 §3.9.1 -----------------------------------------------------------

RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "qop": "auth",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_response_vectors(algorithm: str, expected: str) -> None:
    assert _rfc7616_response(algorithm, password="Circle of Life") == expected


def _rfc7616_response(algorithm: str, *, password: str | None, ha1: str | None = None) -> str:
    return compute_response(
        algorithm=algorithm,
        username="Mufasa",
        realm=RFC7616["realm"],
        password=password,
        method="GET",
        uri="/dir/index.html",
        nonce=RFC7616["nonce"],
        qop="auth",
        nc="00000001",
        cnonce=RFC7616["cnonce"],
        ha1=ha1,
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_challenge_answered_like_the_rfc(algorithm: str, expected: str) -> None:
    challenge = format_challenge(
        RFC7616["realm"], RFC7616["nonce"], algorithm=algorithm, opaque=RFC7616_OPAQUE
    )
    value = build_authorization(
        parse_auth_header(challenge),
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616["cnonce"],
    )
    params = parse_auth_header(value).params
    assert params["response"] == expected
    assert params["opaque"] == RFC7616_OPAQUE
    assert params["algorithm"] == algorithm


def test_stored_ha1_gives_the_same_response() -> None:
    ha1 = compute_ha1("MD5", "Mufasa", RFC7616["realm"], "Circle of Life")
    assert ha1 == hashlib.md5(b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
    response = _rfc7616_response("MD5", password=None, ha1=ha1.upper())
    assert response == "8ca523f5e9506fed4657c9700eebdbec"


# --- formulas the RFCs give no vector for (recomputed by hand with hashlib) ------


def _h(name: str, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.new(name, data).hexdigest()


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [("MD5-sess", "md5"), ("SHA-256-sess", "sha256"), ("SHA-512-256-sess", "sha512_256")],
)
def test_session_algorithms_rfc7616_3_4_2(algorithm: str, hash_name: str) -> None:
    ha1 = _h(hash_name, _h(hash_name, "u:r:p") + ":n:c")
    ha2 = _h(hash_name, "REGISTER:sip:r")
    expected = _h(hash_name, f"{ha1}:n:00000002:c:auth:{ha2}")
    got = compute_response(
        algorithm=algorithm,
        username="u",
        realm="r",
        password="p",
        method="REGISTER",
        uri="sip:r",
        nonce="n",
        qop="auth",
        nc="00000002",
        cnonce="c",
    )
    assert got == expected


def test_auth_int_hashes_the_body_rfc7616_3_4_3() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    ha2 = _h("sha256", "INVITE:sip:8006@pbx:" + _h("sha256", body))
    expected = _h("sha256", f"{_h('sha256', 'u:r:p')}:n:00000001:c:auth-int:{ha2}")
    got = compute_response(
        algorithm="SHA-256",
        username="u",
        realm="r",
        password="p",
        method="INVITE",
        uri="sip:8006@pbx",
        nonce="n",
        qop="auth-int",
        nc="00000001",
        cnonce="c",
        body=body,
    )
    assert got == expected


def test_no_qop_is_rfc2069() -> None:
    expected = _h("md5", f"{_h('md5', 'u:r:p')}:n:{_h('md5', 'REGISTER:sip:r')}")
    got = compute_response(
        algorithm="md5",
        username="u",
        realm="r",
        password="p",
        method="REGISTER",
        uri="sip:r",
        nonce="n",
    )
    assert got == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithm": "SHA-1"},
        {"qop": "auth-conf"},
        {"qop": "auth", "nc": None},
        {"algorithm": "MD5-sess", "cnonce": None},
        {"password": None},
    ],
)
def test_compute_response_refuses(kwargs: dict[str, str | None]) -> None:
    base: dict[str, str | None] = {
        "algorithm": "MD5",
        "username": "u",
        "realm": "r",
        "password": "p",
        "method": "M",
        "uri": "x",
        "nonce": "n",
        "nc": "00000001",
        "cnonce": "c",
    }
    with pytest.raises(DigestError):
        compute_response(**(base | kwargs))  # type: ignore[arg-type]


# --- server: verify_credentials -------------------------------------------------

REALM = "asterisk"


def _challenge(nonces: NonceManager, now: float, **kwargs: object) -> AuthHeader:
    return parse_auth_header(format_challenge(REALM, nonces.issue(now), **kwargs))  # type: ignore[arg-type]


def _answer(challenge: AuthHeader, password: str = "secret8005", nc: int = 1) -> AuthHeader:
    value = build_authorization(
        challenge,
        method="REGISTER",
        uri="sip:pbx.example.com",
        username="8005",
        password=password,
        cnonce="a1b2c3",
        nc=nc,
    )
    return parse_auth_header(value)


def _verify(creds: AuthHeader, nonces: NonceManager, now: float, **kwargs: object) -> AuthResult:
    options: dict[str, object] = {"password": "secret8005", "ha1": None} | kwargs
    return verify_credentials(
        creds,
        method="REGISTER",
        realm=REALM,
        nonces=nonces,
        now=now,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
@pytest.mark.parametrize("qop", ["auth", "auth-int", "auth,auth-int", None])
def test_round_trip_client_to_server(algorithm: str, qop: str | None) -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 10.0, algorithm=algorithm, qop=qop))
    assert creds.params.get("qop") == (None if qop is None else qop.split(",")[0])
    assert _verify(creds, nonces, 11.0) is AuthResult.OK


def test_stored_md5_cred_verifies() -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0))
    ha1 = compute_ha1("MD5", "8005", REALM, "secret8005")
    assert _verify(creds, nonces, 1.0, password=None, ha1=ha1) is AuthResult.OK


def test_md5_cred_cannot_verify_sha256() -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0, algorithm="SHA-256"))
    ha1 = compute_ha1("MD5", "8005", REALM, "secret8005")
    assert _verify(creds, nonces, 1.0, password=None, ha1=ha1) is AuthResult.BAD_RESPONSE


def test_wrong_password_is_bad_response() -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0), password="guess")
    assert _verify(creds, nonces, 1.0) is AuthResult.BAD_RESPONSE


def test_expired_nonce_is_stale_exactly_at_lifetime() -> None:
    nonces = NonceManager(SECRET, lifetime=30.0)
    challenge = _challenge(nonces, 100.0)
    assert _verify(_answer(challenge, nc=1), nonces, 129.75) is AuthResult.OK
    assert _verify(_answer(challenge, nc=2), nonces, 130.0) is AuthResult.STALE
    assert _verify(_answer(challenge, nc=3, password="guess"), nonces, 130.0) is (
        AuthResult.BAD_RESPONSE  # stale=true only for a right response (RFC 7616 §3.3)
    )


def test_stale_then_fresh_challenge_succeeds() -> None:
    nonces = NonceManager(SECRET, lifetime=30.0)
    old = _challenge(nonces, 0.0)
    assert _verify(_answer(old), nonces, 40.0) is AuthResult.STALE
    fresh = _challenge(nonces, 40.0, stale=True)
    assert fresh.params["stale"] == "true"
    assert _verify(_answer(fresh), nonces, 40.5) is AuthResult.OK


def test_forged_nonce_is_bad_nonce() -> None:
    nonces = NonceManager(SECRET)
    challenge = _challenge(nonces, 0.0)
    nonce = challenge.params["nonce"]
    forged = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    tampered = AuthHeader("Digest", challenge.params | {"nonce": forged})
    assert _verify(_answer(tampered), nonces, 1.0) is AuthResult.BAD_NONCE


def test_nonce_from_another_secret_is_bad_nonce() -> None:
    other = NonceManager(b"another secret")
    creds = _answer(_challenge(other, 0.0))
    assert _verify(creds, NonceManager(SECRET), 1.0) is AuthResult.BAD_NONCE


def test_replayed_nonce_count_is_replay() -> None:
    nonces = NonceManager(SECRET)
    challenge = _challenge(nonces, 0.0)
    first = _answer(challenge, nc=1)
    assert _verify(first, nonces, 1.0) is AuthResult.OK
    assert _verify(first, nonces, 2.0) is AuthResult.REPLAY
    assert _verify(_answer(challenge, nc=3), nonces, 3.0) is AuthResult.OK
    assert _verify(_answer(challenge, nc=2), nonces, 4.0) is AuthResult.REPLAY


def test_wrong_response_does_not_burn_the_nonce() -> None:
    nonces = NonceManager(SECRET)
    challenge = _challenge(nonces, 0.0)
    attack = _answer(challenge, password="guess", nc=0xFFFFFFFF)
    assert _verify(attack, nonces, 1.0) is AuthResult.BAD_RESPONSE
    assert _verify(_answer(challenge, nc=1), nonces, 2.0) is AuthResult.OK


def test_without_qop_nonce_is_reusable_until_expiry() -> None:
    nonces = NonceManager(SECRET, lifetime=30.0)
    creds = _answer(_challenge(nonces, 0.0, qop=None))
    assert "nc" not in creds.params
    assert _verify(creds, nonces, 1.0) is AuthResult.OK
    assert _verify(creds, nonces, 29.0) is AuthResult.OK
    assert _verify(creds, nonces, 30.0) is AuthResult.STALE


@pytest.mark.parametrize(
    "change",
    [
        {"realm": "elsewhere"},
        {"algorithm": "SHA-1"},
        {"username": ""},
        {"nc": "1"},
        {"qop": "auth-conf"},
        {"userhash": "true"},
    ],
)
def test_malformed_credentials(change: dict[str, str]) -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0))
    bad = AuthHeader("Digest", creds.params | change)
    assert _verify(bad, nonces, 1.0) is AuthResult.MALFORMED


@pytest.mark.parametrize("missing", ["username", "realm", "nonce", "uri", "response", "nc"])
def test_missing_parameter_is_malformed(missing: str) -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0))
    bad = AuthHeader("Digest", {k: v for k, v in creds.params.items() if k != missing})
    assert _verify(bad, nonces, 1.0) is AuthResult.MALFORMED


def test_not_digest_is_malformed() -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0))
    assert _verify(AuthHeader("Bearer", creds.params), nonces, 1.0) is AuthResult.MALFORMED


def test_verify_needs_password_or_ha1() -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0))
    with pytest.raises(ValueError, match="password or an ha1"):
        _verify(creds, nonces, 1.0, password=None)


def test_uppercase_response_hex_is_accepted() -> None:
    nonces = NonceManager(SECRET)
    creds = _answer(_challenge(nonces, 0.0))
    loud = AuthHeader("Digest", creds.params | {"response": creds.params["response"].upper()})
    assert _verify(loud, nonces, 1.0) is AuthResult.OK


def test_select_credentials_and_challenge() -> None:
    ours = parse_auth_header('Digest username="a", realm="asterisk"')
    theirs = parse_auth_header('Digest username="a", realm="upstream"')
    assert select_credentials([theirs, ours], REALM) is ours
    assert select_credentials([theirs], REALM) is None
    sha1 = parse_auth_header('Digest realm="r", nonce="n", algorithm=SHA-1')
    sha256 = parse_auth_header('Digest realm="r", nonce="n", algorithm=SHA-256')
    md5 = parse_auth_header('Digest realm="r", nonce="n"')
    assert select_challenge([sha1, sha256, md5]) is sha256
    assert select_challenge([sha1]) is None


def test_build_authorization_refuses() -> None:
    with pytest.raises(DigestError):
        build_authorization(
            AuthHeader("Basic", {"realm": "r"}),
            method="M",
            uri="u",
            username="a",
            password="b",
            cnonce="c",
        )
    with pytest.raises(DigestError):
        build_authorization(
            AuthHeader("Digest", {"realm": "r"}),
            method="M",
            uri="u",
            username="a",
            password="b",
            cnonce="c",
        )
    with pytest.raises(DigestError):
        build_authorization(
            AuthHeader("Digest", {"realm": "r", "nonce": "n", "qop": "x"}),
            method="M",
            uri="u",
            username="a",
            password="b",
            cnonce="c",
        )


# --- NonceManager ----------------------------------------------------------------


def test_nonces_issued_at_the_same_instant_differ() -> None:
    nonces = NonceManager(SECRET)
    first, second = nonces.issue(5.0), nonces.issue(5.0)
    assert first != second
    assert len(first) == 64
    assert nonces.issued_at(first) == 5.0


@pytest.mark.parametrize("garbage", ["", "abc", "=" * 64, "!" * 64, "A" * 64, "A" * 65])
def test_garbled_nonce_is_invalid(garbage: str) -> None:
    assert NonceManager(SECRET).check(garbage, None, 0.0) is NonceStatus.INVALID


def test_nonce_lifetime_boundary() -> None:
    nonces = NonceManager(SECRET, lifetime=30.0)
    nonce = nonces.issue(1000.0)
    assert nonces.check(nonce, None, 1000.0) is NonceStatus.VALID
    assert nonces.check(nonce, None, 1029.5) is NonceStatus.VALID
    assert nonces.check(nonce, None, 1030.0) is NonceStatus.STALE
    assert nonces.check(nonce, None, 999.0) is NonceStatus.STALE  # from the future


def test_peek_remembers_nothing() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0)
    assert nonces.peek(nonce, "00000001", 1.0) is NonceStatus.VALID
    assert nonces.check(nonce, "00000001", 1.0) is NonceStatus.VALID
    assert nonces.check(nonce, "00000001", 1.0) is NonceStatus.REPLAY
    assert nonces.check(nonce, "zz", 1.0) is NonceStatus.INVALID


def test_nc_memory_is_pruned_by_age() -> None:
    nonces = NonceManager(SECRET, lifetime=30.0)
    for t in range(5):
        assert nonces.check(nonces.issue(float(t)), "00000001", float(t)) is NonceStatus.VALID
    assert len(nonces) == 5
    late = nonces.issue(40.0)
    nonces.check(late, "00000001", 40.0)
    assert len(nonces) == 1


def test_expire_forgets_stale_nonces_without_a_new_check() -> None:
    nonces = NonceManager(SECRET, lifetime=30.0)
    for t in range(5):
        nonces.check(nonces.issue(float(t)), "00000001", float(t))
    assert nonces.expire(31.5) == 2  # issued at 0 and 1
    assert len(nonces) == 3
    assert nonces.expire(31.5) == 0
    assert nonces.expire(100.0) == 3 and len(nonces) == 0
    fresh = nonces.issue(100.0)
    assert nonces.check(fresh, "00000001", 100.0) is NonceStatus.VALID
    assert nonces.check(fresh, "00000001", 100.0) is NonceStatus.REPLAY


def test_nc_memory_is_bounded_and_evicted_nonces_go_stale() -> None:
    nonces = NonceManager(SECRET, lifetime=30.0, max_entries=2)
    a, b, c = nonces.issue(0.0), nonces.issue(1.0), nonces.issue(2.0)
    for nonce in (a, b, c):
        assert nonces.check(nonce, "00000001", 3.0) is NonceStatus.VALID
    assert len(nonces) == 2
    # a's nc was forgotten: it must not become replayable, it goes stale instead.
    assert nonces.check(a, "00000001", 4.0) is NonceStatus.STALE
    assert nonces.check(b, "00000001", 4.0) is NonceStatus.REPLAY
    assert nonces.check(c, "00000002", 4.0) is NonceStatus.VALID


def test_nonce_manager_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        NonceManager(b"")
    with pytest.raises(ValueError):
        NonceManager(SECRET, lifetime=0)


# --- FailureTracker ----------------------------------------------------------------


def test_three_failures_in_window_block_for_ban() -> None:
    tracker = FailureTracker(max_failures=3, window=60.0, ban=300.0)
    assert tracker.record_failure("192.0.2.7", 0.0) == 1
    assert tracker.record_failure("192.0.2.7", 10.0) == 2
    assert not tracker.is_blocked("192.0.2.7", 10.0)
    assert tracker.record_failure("192.0.2.7", 59.0) == 3
    assert tracker.is_blocked("192.0.2.7", 59.0)
    assert tracker.is_blocked("192.0.2.7", 358.5)
    assert not tracker.is_blocked("192.0.2.7", 359.0)
    assert not tracker.is_blocked("198.51.100.1", 59.0)


def test_failures_outside_the_window_do_not_add_up() -> None:
    tracker = FailureTracker(max_failures=3, window=60.0)
    assert tracker.record_failure("k", 0.0) == 1
    assert tracker.record_failure("k", 30.0) == 2
    assert tracker.record_failure("k", 60.0) == 2  # the failure at 0.0 left the window
    assert tracker.record_failure("k", 200.0) == 1
    assert not tracker.is_blocked("k", 200.0)


def test_success_resets_and_failures_while_banned_extend() -> None:
    tracker = FailureTracker(max_failures=2, window=60.0, ban=100.0)
    tracker.record_failure("k", 0.0)
    tracker.record_success("k")
    assert tracker.record_failure("k", 1.0) == 1
    tracker.record_failure("k", 2.0)
    assert tracker.is_blocked("k", 50.0)
    tracker.record_failure("k", 50.0)
    assert tracker.is_blocked("k", 149.0)
    tracker.record_success("k")
    assert not tracker.is_blocked("k", 149.0)


def test_failure_tracker_memory_is_bounded() -> None:
    tracker = FailureTracker(max_failures=3, window=60.0, max_keys=3)
    for i in range(10):
        tracker.record_failure(f"10.0.0.{i}", float(i))
        assert len(tracker) <= 3
    assert tracker.record_failure("10.0.0.9", 10.0) == 2
    tracker.record_failure("fresh", 500.0)  # everything else has expired
    assert len(tracker) == 1


# --- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "scheme", "params"),
    [
        ('digest realm="asterisk"', "Digest", {"realm": "asterisk"}),
        ('DIGEST   Realm = "a"  ,  NONCE="b"', "Digest", {"realm": "a", "nonce": "b"}),
        (
            r'Digest username="say \"hi\"", realm="back\\slash"',
            "Digest",
            {"username": 'say "hi"', "realm": "back\\slash"},
        ),
        (
            "Digest algorithm=MD5, qop=auth, nc=00000001",
            "Digest",
            {"algorithm": "MD5", "qop": "auth", "nc": "00000001"},
        ),
        (
            'Digest uri=sip:8005@10.0.0.1:5060;transport=udp, realm="r"',
            "Digest",
            {"uri": "sip:8005@10.0.0.1:5060;transport=udp", "realm": "r"},
        ),
        ('Digest realm="a,b=c", nonce=""', "Digest", {"realm": "a,b=c", "nonce": ""}),
        ('  Digest\trealm="x",, ,nonce="y",  ', "Digest", {"realm": "x", "nonce": "y"}),
        ('Digest realm="x",\r\n\tnonce="y"', "Digest", {"realm": "x", "nonce": "y"}),
        ("Digest", "Digest", {}),
        ('NTLM realm="x"', "NTLM", {"realm": "x"}),
    ],
)
def test_parse_tricky_headers(value: str, scheme: str, params: dict[str, str]) -> None:
    header = parse_auth_header(value)
    assert header.scheme == scheme
    assert header.params == params


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        'realm="asterisk"',
        '="x"',
        'Digest realm="unterminated',
        'Digest realm="a\\"',
        'Digest realm="a", REALM="b"',
        "Digest realm",
        "Digest realm=",
        'Digest realm="a" nonce="b"',
        'Digest realm="a"x',
        'Digest,realm="a"',
        "Basic dXNlcjpwYXNzd29yZA==",
        'Digest realm="a",\r\nnonce="b"',
        'Digest realm="a\rb"',
    ],
)
def test_parse_rejects_malformed(value: str) -> None:
    with pytest.raises(DigestError):
        parse_auth_header(value)


def test_digest_error_is_a_value_error() -> None:
    assert issubclass(DigestError, ValueError)


def test_format_challenge_shape() -> None:
    assert format_challenge("asterisk", "n0nce", opaque="op", stale=True) == (
        'Digest realm="asterisk",nonce="n0nce",opaque="op",algorithm=MD5,qop="auth",stale=true'
    )
    assert format_challenge('a"b', "n", qop=None) == 'Digest realm="a\\"b",nonce="n",algorithm=MD5'


def test_format_refuses_line_breaks_and_bad_names() -> None:
    with pytest.raises(DigestError):
        format_challenge("evil\r\nVia: x", "n")
    with pytest.raises(DigestError):
        format_auth_header(AuthHeader("Digest", {"bad name": "x"}))


# --- properties ----------------------------------------------------------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
_tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12)
_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
    max_size=30,
)
_params = st.dictionaries(_tokens.map(str.lower), _values | _tokens, max_size=8)


@given(scheme=_tokens, params=_params)
def test_format_parse_round_trip(scheme: str, params: dict[str, str]) -> None:
    for unquoted in (CHALLENGE_UNQUOTED, frozenset(params)):
        text = format_auth_header(AuthHeader(scheme, params), unquoted=unquoted)
        parsed = parse_auth_header(text)
        assert parsed.params == params
        assert parsed.scheme == ("Digest" if scheme.lower() == "digest" else scheme)


@given(realm=_values, nonce=_values, opaque=st.none() | _values, stale=st.booleans())
def test_challenge_round_trip(realm: str, nonce: str, opaque: str | None, stale: bool) -> None:
    parsed = parse_auth_header(format_challenge(realm, nonce, opaque=opaque, stale=stale))
    assert parsed.params["realm"] == realm
    assert parsed.params["nonce"] == nonce
    assert parsed.params.get("opaque") == opaque
    assert ("stale" in parsed.params) is stale


@given(st.text(max_size=60))
def test_parse_raises_only_digest_error(value: str) -> None:
    with contextlib.suppress(DigestError):
        parse_auth_header(value)


@given(username=_values.filter(bool), password=_values, nc=st.integers(1, 0xFFFFFFFF))
def test_any_credentials_round_trip(username: str, password: str, nc: int) -> None:
    nonces = NonceManager(SECRET)
    challenge = parse_auth_header(format_challenge(REALM, nonces.issue(0.0)))
    value = build_authorization(
        challenge,
        method="INVITE",
        uri="sip:8006@pbx",
        username=username,
        password=password,
        cnonce="x",
        nc=nc,
    )
    creds = parse_auth_header(value)
    result = verify_credentials(
        creds, method="INVITE", password=password, ha1=None, realm=REALM, nonces=nonces, now=1.0
    )
    assert result is AuthResult.OK


def test_nonces_issued_here_are_tracked_without_python_objects() -> None:
    """A registration peak leaves nothing behind: nc lives in arrays indexed by seq."""
    nonces = NonceManager(SECRET, lifetime=30.0)
    issued = [nonces.issue(t / 100) for t in range(2000)]
    for index, nonce in enumerate(issued):
        assert nonces.check(nonce, "00000001", 20.0 + index / 1000) is NonceStatus.VALID
    assert len(nonces) == 2000 and nonces._highest_nc == {}
    assert nonces.check(issued[7], "00000001", 25.0) is NonceStatus.REPLAY
    assert nonces.check(issued[7], "00000002", 25.0) is NonceStatus.VALID
    assert nonces.expire(60.0) == 2000 and len(nonces) == 0
    assert len(nonces._issued) < 1024  # trimmed from the front


def test_a_nonce_from_another_node_is_tracked_too() -> None:
    here, there = NonceManager(SECRET), NonceManager(SECRET)
    for _ in range(3):
        here.issue(10.0)  # the same seq numbers, other times
    foreign = there.issue(11.0)
    assert here.check(foreign, "00000001", 12.0) is NonceStatus.VALID
    assert here.check(foreign, "00000001", 12.0) is NonceStatus.REPLAY
    assert len(here) == 1
    assert here.expire(41.0) == 1 and len(here) == 0


def test_a_flood_of_challenges_stays_bounded() -> None:
    """Past 4 * max_entries unused nonces the oldest leave the arrays, still usable once."""
    nonces = NonceManager(SECRET, lifetime=30.0, max_entries=10)
    first = nonces.issue(0.0)
    assert nonces.check(first, "00000001", 0.5) is NonceStatus.VALID
    old_unused = nonces.issue(0.5)
    for _ in range(100):
        nonces.issue(1.0)
    assert len(nonces._issued) - nonces._start <= 40
    # first had its nc remembered: forgetting it raised the floor, so it is stale.
    assert nonces.check(first, "00000002", 2.0) is NonceStatus.STALE
    # old_unused left the arrays unused: it is tracked like another node's nonce.
    assert nonces.check(old_unused, "00000001", 2.0) is NonceStatus.VALID
    assert nonces.check(old_unused, "00000001", 2.0) is NonceStatus.REPLAY
