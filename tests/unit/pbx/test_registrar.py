"""Registrar: REGISTER with digest auth, expirations, max_contacts (RFC 3261 §10.3)."""

from __future__ import annotations

import itertools

import pytest

from callway.config.defaults import DEMO_PJSIP_CONF
from callway.config.pjsip import parse_pjsip
from callway.core.address import Address
from callway.pbx.auth import Authenticator
from callway.pbx.location import Location
from callway.pbx.registrar import Registrar
from callway.sip.digest import build_authorization, parse_auth_header
from callway.sip.message import Request, Response, parse_message
from tests.helpers.clock import ManualClock

SOURCE = Address("udp", "192.0.2.10", 40000)
_cseq = itertools.count(1)


def make_register(
    user: str = "8005",
    *,
    contact: str | None = "<sip:8005@192.0.2.10:40000>",
    expires: int | None = None,
    call_id: str = "reg-call-1",
    authorization: str | None = None,
    cseq: int | None = None,
) -> Request:
    lines = [
        "REGISTER sip:127.0.0.1:5061 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bK" + str(next(_cseq)) + ";rport",
        f"From: <sip:{user}@127.0.0.1>;tag=abc",
        f"To: <sip:{user}@127.0.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq if cseq is not None else next(_cseq)} REGISTER",
        "Max-Forwards: 70",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    data = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


class Phone:
    """Drives the registrar like a softphone: REGISTER, answer the 401 challenge."""

    def __init__(self, registrar: Registrar, clock: ManualClock, user: str, password: str):
        self.registrar, self.clock, self.user, self.password = registrar, clock, user, password

    def register(self, **kwargs: object) -> Response:
        first = self.registrar.handle_register(make_register(self.user, **kwargs), SOURCE,
                                               self.clock.now)  # type: ignore[arg-type]
        if first.status != 401:
            return first
        return self.answer(first, **kwargs)

    def answer(self, challenge_response: Response, **kwargs: object) -> Response:
        challenge = parse_auth_header(challenge_response.get("www-authenticate") or "")
        auth = build_authorization(challenge, method="REGISTER", uri="sip:127.0.0.1:5061",
                                   username=self.user, password=self.password, cnonce="c0ffee")
        request = make_register(self.user, authorization=auth, **kwargs)  # type: ignore[arg-type]
        return self.registrar.handle_register(request, SOURCE, self.clock.now)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def build(clock: ManualClock, extra: str = "") -> tuple[Registrar, Location]:
    config = parse_pjsip(DEMO_PJSIP_CONF + extra)
    location = Location()
    registrar = Registrar(config, location, Authenticator(config, secret=b"k" * 32))
    return registrar, location


def test_register_without_credentials_is_challenged(clock: ManualClock) -> None:
    registrar, _ = build(clock)
    response = registrar.handle_register(make_register(), SOURCE, clock.now)
    assert response.status == 401
    challenge = parse_auth_header(response.get("www-authenticate") or "")
    assert challenge.params["realm"] == "asterisk"
    assert challenge.params["qop"] == "auth"
    assert response.to.tag


def test_register_with_digest_binds_contact(clock: ManualClock) -> None:
    registrar, location = build(clock)
    response = Phone(registrar, clock, "8005", "8005").register()
    assert response.status == 200
    bindings = location.lookup("8005", clock.now)
    assert [b.uri for b in bindings] == ["sip:8005@192.0.2.10:40000"]
    assert bindings[0].source == SOURCE
    assert response.get_all("contact") == ["<sip:8005@192.0.2.10:40000>;expires=3600"]


def test_wrong_password_401_then_403(clock: ManualClock) -> None:
    registrar, location = build(clock)
    phone = Phone(registrar, clock, "8005", "wrong")
    statuses = [phone.register().status for _ in range(5)]
    assert statuses[:2] == [401, 401]
    assert statuses[-1] == 403
    assert 200 not in statuses
    assert location.lookup("8005", clock.now) == []


def test_unknown_user_answers_like_wrong_password(clock: ManualClock) -> None:
    registrar, _ = build(clock)
    first = Phone(registrar, clock, "9999", "x").register()
    second = Phone(registrar, clock, "8005", "x").register()
    assert first.status == second.status == 401


def test_stale_nonce_gets_stale_true(clock: ManualClock) -> None:
    registrar, _ = build(clock)
    challenge = registrar.handle_register(make_register(), SOURCE, clock.now)
    clock.advance(120)
    response = Phone(registrar, clock, "8005", "8005").answer(challenge)
    assert response.status == 401
    assert "stale=true" in (response.get("www-authenticate") or "").lower()


def test_interval_too_brief(clock: ManualClock) -> None:
    registrar, _ = build(clock)
    response = Phone(registrar, clock, "8005", "8005").register(expires=10)
    assert response.status == 423
    assert response.get("min-expires") == "60"


def test_expiration_capped_and_expired(clock: ManualClock) -> None:
    registrar, location = build(clock)
    response = Phone(registrar, clock, "8005", "8005").register(expires=100000)
    assert response.status == 200
    assert response.get_all("contact")[0].endswith(";expires=7200")
    clock.advance(7201)
    assert location.lookup("8005", clock.now) == []
    assert [b.aor for b in location.expire(clock.now)] == ["8005"]


def test_unregister_with_expires_zero(clock: ManualClock) -> None:
    registrar, location = build(clock)
    phone = Phone(registrar, clock, "8005", "8005")
    assert phone.register().status == 200
    response = phone.register(expires=0)
    assert response.status == 200
    assert location.lookup("8005", clock.now) == []
    assert response.get("contact") is None


def test_unregister_star(clock: ManualClock) -> None:
    registrar, location = build(clock)
    phone = Phone(registrar, clock, "8005", "8005")
    assert phone.register().status == 200
    assert phone.register(contact="*").status == 400  # "*" needs Expires: 0
    assert phone.register(contact="*", expires=0).status == 200
    assert location.lookup("8005", clock.now) == []


def test_max_contacts_one_rejects_second_contact(clock: ManualClock) -> None:
    registrar, location = build(clock)
    phone = Phone(registrar, clock, "8005", "8005")
    assert phone.register().status == 200
    response = phone.register(contact="<sip:8005@192.0.2.11:5060>", call_id="other")
    assert response.status == 403
    assert len(location.lookup("8005", clock.now)) == 1


def test_remove_existing_replaces_oldest(clock: ManualClock) -> None:
    config_text = DEMO_PJSIP_CONF.replace("max_contacts=1", "max_contacts=1\nremove_existing=yes")
    config = parse_pjsip(config_text)
    location = Location()
    registrar = Registrar(config, location, Authenticator(config, secret=b"k" * 32))
    phone = Phone(registrar, clock, "8005", "8005")
    assert phone.register().status == 200
    clock.advance(1)
    assert phone.register(contact="<sip:8005@192.0.2.11:5060>", call_id="other").status == 200
    assert [b.uri for b in location.lookup("8005", clock.now)] == ["sip:8005@192.0.2.11:5060"]


def test_register_for_foreign_aor_is_forbidden(clock: ManualClock) -> None:
    registrar, _ = build(clock)
    phone = Phone(registrar, clock, "8005", "8005")
    challenge = registrar.handle_register(make_register("8005"), SOURCE, clock.now)
    auth_header = parse_auth_header(challenge.get("www-authenticate") or "")
    auth = build_authorization(auth_header, method="REGISTER", uri="sip:127.0.0.1:5061",
                               username="8005", password="8005", cnonce="x")
    request = make_register("8005", authorization=auth)
    request.set("To", "<sip:8006@127.0.0.1>")
    assert registrar.handle_register(request, SOURCE, clock.now).status == 403
    del phone


def test_out_of_order_cseq_rejected(clock: ManualClock) -> None:
    registrar, _ = build(clock)
    phone = Phone(registrar, clock, "8005", "8005")
    assert phone.register(cseq=10).status == 200
    assert phone.register(cseq=5).status == 500


def test_sha256_challenge_first_and_accepted(clock: ManualClock) -> None:
    config = parse_pjsip(DEMO_PJSIP_CONF)
    location = Location()
    auth = Authenticator(config, secret=b"k" * 32, algorithms=("SHA-256", "MD5"))
    registrar = Registrar(config, location, auth)
    challenge = registrar.handle_register(make_register(), SOURCE, clock.now)
    offered = [parse_auth_header(v) for v in challenge.get_all("www-authenticate")]
    assert [c.params["algorithm"] for c in offered] == ["SHA-256", "MD5"]
    creds = build_authorization(offered[0], method="REGISTER", uri="sip:127.0.0.1:5061",
                                username="8005", password="8005", cnonce="abc")
    assert "algorithm=SHA-256" in creds
    response = registrar.handle_register(make_register(authorization=creds), SOURCE, clock.now)
    assert response.status == 200
    assert location.lookup("8005", clock.now)


def test_added_contact_lines_are_capped_per_second(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    config_text = DEMO_PJSIP_CONF.replace("max_contacts=1", "max_contacts=1\nremove_existing=yes")
    config = parse_pjsip(config_text)
    registrar = Registrar(config, Location(), Authenticator(config, secret=b"k" * 32))
    registrar.added_log.per_second = 2
    phone = Phone(registrar, clock, "8005", "8005")
    with caplog.at_level("INFO", logger="callway.pbx.registrar"):
        for port in range(40001, 40006):  # five new contacts within one second
            assert phone.register(contact=f"<sip:8005@192.0.2.10:{port}>").status == 200
        registrar.log_suppressed()
        registrar.log_suppressed()  # nothing new: no second summary
    lines = [r.getMessage() for r in caplog.records]
    assert sum("Added contact" in line for line in lines) == 2
    assert [line for line in lines if "more contacts" in line] == [
        "Added 3 more contacts (not logged one by one: at most 2 lines a second)"
    ]
    clock.advance(1)
    caplog.clear()
    with caplog.at_level("INFO", logger="callway.pbx.registrar"):
        phone.register(contact="<sip:8005@192.0.2.10:40009>")
    assert any("Added contact" in r.getMessage() for r in caplog.records)


LEAN_CONF = """
[one]
type=aor
max_contacts=1
[swap]
type=aor
max_contacts=1
remove_existing=yes
[two]
type=aor
max_contacts=2
[none]
type=aor
max_contacts=0
"""

_A = Address("udp", "192.0.2.1", 5060)
_B = Address("udp", "192.0.2.2", 5070)


@pytest.mark.parametrize("aor_name", ["one", "swap", "two", "none"])
def test_bind_of_one_contact_equals_the_general_case(
    aor_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registrar.bind's lean case (one contact, at most one held) decides as the general one."""
    from callway.pbx.registrar import ContactRequest

    # (uri, call_id, cseq, source, now): a first registration, a refresh, an out-of-order
    # CSeq, another contact while the first lives, after it expired, and back again.
    steps = [
        ("sip:p@192.0.2.1", "c1", 1, _A, 100.0),
        ("sip:p@192.0.2.1", "c1", 2, _A, 110.0),
        ("sip:p@192.0.2.1", "c1", 2, _A, 120.0),
        ("sip:p@192.0.2.2:5070", "c2", 1, _B, 130.0),
        ("sip:p@192.0.2.1", "c3", 1, _A, 1000.0),
        ("sip:p@192.0.2.2:5070", "c4", 7, _B, 1010.0),
    ]
    runs = []
    for lean in (True, False):
        config = parse_pjsip(LEAN_CONF, "pjsip.conf")
        location = Location()
        registrar = Registrar(config, location, Authenticator(config))
        if not lean:
            monkeypatch.setattr(registrar, "_bind_alone", lambda *_args: False)
        heard: list[object] = []
        registrar.listeners.append(heard.append)
        aor = config.aors[aor_name]
        outcomes = []
        for uri, call_id, cseq, source, now in steps:
            wanted = [ContactRequest(uri, 300, {})]
            refusal = registrar.bind(aor, wanted, call_id, cseq, source, now, (), "ua")
            outcomes.append((refusal, location.all(now), registrar.contact_values(aor, now)))
        runs.append((outcomes, heard, location.all(0.0)))
    assert runs[0] == runs[1]
