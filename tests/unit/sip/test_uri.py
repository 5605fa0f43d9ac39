"""SIP/SIPS URIs and absolute URIs (RFC 3261 §19.1, §25.1; RFC 5118; RFC 5954)."""

from __future__ import annotations

import pytest

from callway.sip.errors import ParseError
from callway.sip.uri import AbsoluteURI, SipURI, ascii_digits, parse_hostport, parse_uri, unescape


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def test_full_sip_uri_components() -> None:
    uri = sip("sip:alice:secret@atlanta.com:5061;Transport=TCP;lr?subject=project%20x&priority=1")
    assert uri.scheme == "sip"
    assert (uri.user, uri.password) == ("alice", "secret")
    assert (uri.host, uri.port) == ("atlanta.com", 5061)
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.transport == "tcp"
    assert uri.headers == {"subject": "project%20x", "priority": "1"}
    assert uri.host_port == "atlanta.com:5061"
    assert not uri.secure


def test_minimal_and_sips() -> None:
    uri = sip("sips:example.com")
    assert (uri.user, uri.host, uri.port, uri.params) == (None, "example.com", None, {})
    assert uri.secure
    assert uri.transport is None
    assert uri.host_port == "example.com"


def test_scheme_is_case_insensitive() -> None:
    assert sip("SIP:Bob@Example.COM").scheme == "sip"
    assert sip("SIP:Bob@Example.COM").host == "Example.COM"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:user@[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),
        ("sip:[2001:db8::192.0.2.1]", "[2001:db8::192.0.2.1]", None),
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # RFC 5118 §4.3
        ("sip:192.0.2.1:5060", "192.0.2.1", 5060),
    ],
)
def test_hosts_and_ports(text: str, host: str, port: int | None) -> None:
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # RFC 5118 §4.2: IPv6 without brackets
        "sip:[2001:db8:::192.0.2.1]",  # RFC 5118 §4.10, RFC 5954
        "sip:[::1",
        "sip:[::1]x",
        "sip:[1]",
        "sip:[zz::1]",
        "sip:host:0",
        "sip:host:65536",
        "sip:host:5060x",
        "sip:host:\uff15",  # a full-width digit is not DIGIT
        "sip:host:\u00b2",  # nor is a superscript
        "sip:host:000005060",
        "sip:user@",
        "sip:@host",
        "sip:",
        "sip:ho st",
        "sip:host;;lr",
        'sip:"q"@host',
        "sip:<host>",
        "sip:host\x00",
        "nocolon",
        "1abc:opaque",
        ":empty",
    ],
)
def test_invalid_uris_raise_parse_error_400(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    "text", ["tel:+1-201-555-0123", "im:alice@example.com", "soap.beep://192.0.2.103:3002", "x:y"]
)
def test_other_schemes_are_kept_opaque(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteURI)
    assert str(uri) == text
    assert uri.scheme == text.split(":", 1)[0].lower()


def test_user_part_may_hold_semicolons_and_question_marks() -> None:
    uri = sip("sip:user;par=u%40example.net@example.com;maddr=192.0.2.1")
    assert uri.user == "user;par=u%40example.net"
    assert uri.params == {"maddr": "192.0.2.1"}


def test_escapes_are_kept_on_the_wire_and_unescape_resolves_them() -> None:
    uri = sip("sip:%61lice%00@example.com")
    assert uri.user == "%61lice%00"
    assert unescape(uri.user) == "alice\x00"
    assert unescape("plain") == "plain"


def test_str_round_trips() -> None:
    for text in (
        "sip:alice@atlanta.com",
        "sips:alice:pw@[2001:db8::1]:5061;transport=tls;lr",
        "sip:host;maddr=239.255.255.1;ttl=15?Route=%3Csip:x%3E&Subject=hi",
    ):
        assert str(parse_uri(text)) == text


def test_copy_is_independent() -> None:
    uri = sip("sip:a@b;lr?h=v")
    other = uri.copy()
    other.params["transport"] = "tcp"
    other.headers.clear()
    assert uri.params == {"lr": None}
    assert uri.headers == {"h": "v"}
    assert other == SipURI("b", "a", None, "sip", None, {"lr": None, "transport": "tcp"}, {})


def test_parse_hostport_reports_context() -> None:
    assert parse_hostport("example.com:5060") == ("example.com", 5060)
    with pytest.raises(ParseError, match="Via: x"):
        parse_hostport("bad host", "Via: x")


def test_ascii_digits() -> None:
    assert ascii_digits("0123456789")
    assert not ascii_digits("")
    assert not ascii_digits("\u0663")  # ARABIC-INDIC DIGIT THREE
    assert not ascii_digits("12a")
