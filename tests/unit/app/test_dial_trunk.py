"""Trunks: the dialled number in the contact's URI, outbound_auth credentials, caller ID."""

from __future__ import annotations

from callway.app.b2bua.channel import caller_id
from callway.app.b2bua.dial import outbound_credentials, with_user
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


def invite(from_value: str) -> Request:
    return Request(
        "INVITE",
        "sip:8006@192.0.2.1",
        [("From", f"{from_value};tag=1"), ("To", "<sip:8006@192.0.2.1>"), ("Call-ID", "c")],
    )


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
