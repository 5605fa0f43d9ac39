"""Trunks: the dialled number in the contact's URI, outbound_auth credentials, caller ID."""

from __future__ import annotations

from callway.app.b2bua.channel import caller_id
from callway.app.b2bua.dial import (
    identity_headers,
    outbound_credentials,
    outbound_proxy,
    with_user,
)
from callway.config.pjsip import parse_pjsip
from callway.sip.message import Request

CONF = """
[carrier]
type=endpoint
outbound_auth=a1,a2,hashed
aors=carrier

[carrier]
type=aor
contact=sip:gw.example.net:5080;transport=udp

[a1]
type=auth
auth_type=userpass
username=acct1
password=pw1

[a2]
type=auth
auth_type=userpass
password=pw2
realm=other.example

[hashed]
type=auth
auth_type=md5
username=acct3
md5_cred=0123456789abcdef0123456789abcdef
"""


def test_the_number_becomes_the_user_of_the_contact_uri() -> None:
    assert with_user("sip:gw.example.net:5080;transport=udp", "15551234567") == (
        "sip:15551234567@gw.example.net:5080;transport=udp"
    )
    assert with_user("sip:old@gw.example.net", "100") == "sip:100@gw.example.net"


def test_outbound_credentials_in_order_with_their_realms() -> None:
    config = parse_pjsip(CONF, "pjsip.conf")
    endpoint = config.endpoints["carrier"]
    assert outbound_credentials(config, endpoint) == (
        ("acct1", "pw1", ""),
        ("a2", "pw2", "other.example"),  # no username=: the section's name, as Asterisk
    )


def invite(from_value: str, *extra: tuple[str, str]) -> Request:
    return Request(
        "INVITE",
        "sip:8006@192.0.2.1",
        [("From", f"{from_value};tag=1"), ("To", "<sip:8006@192.0.2.1>"), ("Call-ID", "c"),
         *extra],
    )  # fmt: skip


def test_caller_id_comes_from_the_from_header() -> None:
    """A trunk's customer number and name reach CALLERID(num/name), as in chan_pjsip."""
    config = parse_pjsip(CONF, "pjsip.conf")
    endpoint = config.endpoints["carrier"]
    assert caller_id(endpoint, invite('"Jane Roe" <sip:+15551234567@gw>')) == (
        "+15551234567",
        "Jane Roe",
    )
    assert caller_id(endpoint, invite("<sip:+15551234567@gw>")) == ("+15551234567",) * 2
    assert caller_id(endpoint, invite("<sip:gw.example.net>")) == ("carrier", "carrier")


def test_the_endpoints_callerid_wins() -> None:
    text = '\n[desk]\ntype=endpoint\ncallerid="Sales Desk" <100>\n'
    config = parse_pjsip(CONF + text, "pjsip.conf")
    desk = config.endpoints["desk"]
    assert caller_id(desk, invite('"Bob" <sip:desk@pbx>')) == ("100", "Sales Desk")


def test_caller_id_from_outside_stays_inside_the_from_header() -> None:
    """A caller ID taken from a peer's From cannot break the From we send (§25.1)."""
    from callway.app.b2bua.dial import from_value
    from callway.sip.headers import parse_name_addr
    from callway.sip.uri import SipURI

    value = from_value('Eve" <sip:x@evil>', "+1 555>\udcff@x", "192.0.2.1")
    assert value == '"Eve\\" <sip:x@evil>" <sip:+1%20555%3E%FF%40x@192.0.2.1>'
    parsed = parse_name_addr(value)
    assert parsed.display == 'Eve" <sip:x@evil>'
    assert isinstance(parsed.uri, SipURI) and parsed.uri.host == "192.0.2.1"
    assert from_value("Jane", "+15551234567", "pbx") == '"Jane" <sip:+15551234567@pbx>'


def test_an_escaped_user_part_is_not_escaped_twice() -> None:
    from callway.sip.uri import escape_user

    assert escape_user("a%20b%3Ec") == "a%20b%3Ec"
    assert escape_user("100%") == "100%25"


TRUSTED = "\n[trunk]\ntype=endpoint\ntrust_id_inbound=yes\ncallerid=Trunk <999>\n"
ANONYMOUS = '"Anonymous" <sip:anonymous@anonymous.invalid>'


def test_trust_id_inbound_takes_the_asserted_identity() -> None:
    """RFC 3325: a trusted carrier asserts the caller in P-Asserted-Identity, else RPID."""
    trunk = parse_pjsip(CONF + TRUSTED, "pjsip.conf").endpoints["trunk"]
    pai = ("P-Asserted-Identity", '"Jane Roe" <sip:+15551234567@carrier>, <tel:+15551234567>')
    assert caller_id(trunk, invite(ANONYMOUS, pai)) == ("+15551234567", "Jane Roe")
    tel = ("P-Asserted-Identity", "<tel:+15557654321;phone-context=example.com>")
    assert caller_id(trunk, invite(ANONYMOUS, tel)) == ("+15557654321",) * 2
    rpid = ("Remote-Party-ID", '"Rob" <sip:+15550001111@carrier>;party=calling;screen=yes')
    assert caller_id(trunk, invite(ANONYMOUS, rpid)) == ("+15550001111", "Rob")
    assert caller_id(trunk, invite(ANONYMOUS, ("P-Asserted-Identity", "<<bad"), rpid)) == (
        "+15550001111", "Rob"
    )  # fmt: skip
    assert caller_id(trunk, invite(ANONYMOUS)) == ("999", "Trunk")  # none: callerid=


def test_an_untrusted_endpoint_ignores_the_asserted_identity() -> None:
    endpoint = parse_pjsip(CONF, "pjsip.conf").endpoints["carrier"]
    pai = ("P-Asserted-Identity", "<sip:+15551234567@carrier>")
    assert caller_id(endpoint, invite("<sip:8005@pbx>", pai)) == ("8005", "8005")


def test_send_pai_and_send_rpid_carry_callerid_not_from_user() -> None:
    text = (
        "\n[out]\ntype=endpoint\nsend_pai=yes\nsend_rpid=yes\nfrom_user=acct1\n"
        "from_domain=carrier.example\n"
    )
    config = parse_pjsip(CONF + text, "pjsip.conf")
    assert identity_headers(config.endpoints["out"], "Jane", "+15551234567", "pbx") == (
        ("P-Asserted-Identity", '"Jane" <sip:+15551234567@carrier.example>'),
        ("Remote-Party-ID",
         '"Jane" <sip:+15551234567@carrier.example>;party=calling;privacy=off;screen=no'),
    )  # fmt: skip
    assert identity_headers(config.endpoints["carrier"], "Jane", "1", "pbx") == ()


def test_outbound_proxy_is_where_requests_go_and_a_loose_route() -> None:
    from callway.core.address import Address

    assert outbound_proxy("sip:192.0.2.5;lr") == (
        Address("udp", "192.0.2.5", 5060), "<sip:192.0.2.5;lr>"
    )  # fmt: skip
    assert outbound_proxy("sip:sbc.example.net:5080;transport=tcp") == (
        Address("tcp", "sbc.example.net", 5080), "<sip:sbc.example.net:5080;transport=tcp;lr>"
    )  # fmt: skip
    secure = outbound_proxy("sips:sbc.example.net")
    assert secure is not None and secure[0] == Address("tls", "sbc.example.net", 5061)
    assert outbound_proxy("tel:+15551234567") is None
    assert outbound_proxy("sip:<bad") is None
