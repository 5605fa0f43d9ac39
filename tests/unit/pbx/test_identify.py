"""type=identify: endpoints found by source address or header (res_pjsip_endpoint_identifier_ip)."""

from __future__ import annotations

import ipaddress

from callway.config.defaults import DEMO_PJSIP_CONF
from callway.config.pjsip import parse_pjsip
from callway.core.address import Address
from callway.pbx.auth import Authenticator
from callway.pbx.identify import SourceIdentifier
from callway.sip.message import Request

TRUNKS = """
[carrier]
type=endpoint
context=from-external
allow=ulaw
identify_by=ip

[carrier-ip]
type=identify
endpoint=carrier
match=203.0.113.0/24, 2001:db8::/32

[backup]
type=endpoint
context=from-external
allow=ulaw
identify_by=ip

[backup-ip]
type=identify
endpoint=backup
match=203.0.113.7, sbc.example.net

[tagged]
type=endpoint
context=from-external
allow=ulaw

[tagged-header]
type=identify
endpoint=tagged
match_header=X-Trunk: tagged
"""


def invite(from_user: str, *headers: tuple[str, str]) -> Request:
    return Request(
        "INVITE",
        "sip:8006@192.0.2.1",
        [
            ("Via", "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-1"),
            ("From", f"<sip:{from_user}@203.0.113.5>;tag=1"),
            ("To", "<sip:8006@192.0.2.1>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 INVITE"),
            *headers,
        ],
    )


def auth(extra: str = TRUNKS) -> Authenticator:
    return Authenticator(parse_pjsip(DEMO_PJSIP_CONF + extra), secret=b"k" * 32)


def source(host: str) -> Address:
    return Address("udp", host, 5060)


def test_a_trunk_is_identified_by_its_address_and_never_challenged() -> None:
    outcome = auth().check(invite("+15551234"), source("203.0.113.5"), 0.0)
    assert outcome.endpoint is not None and outcome.endpoint.name == "carrier"
    assert outcome.response is None


def test_the_most_specific_match_wins() -> None:
    outcome = auth().check(invite("+15551234"), source("203.0.113.7"), 0.0)
    assert outcome.endpoint is not None and outcome.endpoint.name == "backup"


def test_ipv6_networks_match() -> None:
    outcome = auth().check(invite("+15551234"), source("[2001:db8::5]"), 0.0)
    assert outcome.endpoint is not None and outcome.endpoint.name == "carrier"


def test_from_elsewhere_the_same_request_is_challenged() -> None:
    outcome = auth().check(invite("+15551234"), source("198.51.100.9"), 0.0)
    assert outcome.endpoint is None
    assert outcome.response is not None and outcome.response.status == 401


def test_an_ip_only_trunk_is_not_reached_by_naming_it() -> None:
    """identify_by=ip: writing 'carrier' in From does not open it (toll fraud)."""
    outcome = auth().check(invite("carrier"), source("198.51.100.9"), 0.0)
    assert outcome.endpoint is None
    assert outcome.response is not None and outcome.response.status == 401


def test_a_header_identifies_first() -> None:
    request = invite("+15551234", ("X-Trunk", "tagged"))
    outcome = auth().check(request, source("203.0.113.5"), 0.0)
    assert outcome.endpoint is not None and outcome.endpoint.name == "tagged"


def test_host_names_match_what_the_shell_resolved() -> None:
    config = parse_pjsip(DEMO_PJSIP_CONF + TRUNKS)
    resolved = {"sbc.example.net": (ipaddress.ip_network("198.51.100.20/32"),)}
    identifier = SourceIdentifier(config, resolved)
    found = identifier.by_address("198.51.100.20")
    assert found is not None and found.name == "backup"
    assert SourceIdentifier(config).by_address("198.51.100.20") is None


def test_identifier_order_username_first() -> None:
    """endpoint_identifier_order=username,ip: a phone's From user wins over its address."""
    extra = TRUNKS + "\n[global]\ntype=global\nendpoint_identifier_order=username,ip\n"
    outcome = auth(extra).check(invite("8005"), source("203.0.113.5"), 0.0)
    assert outcome.endpoint is None  # 8005 was identified, and has auth: challenged
    assert outcome.response is not None and outcome.response.status == 401
    default = auth().check(invite("8005"), source("203.0.113.5"), 0.0)
    assert default.endpoint is not None and default.endpoint.name == "carrier"


def test_a_reload_rebuilds_the_rules() -> None:
    checker = auth()
    assert checker.sources().by_address("203.0.113.5") is not None
    checker.config = parse_pjsip(DEMO_PJSIP_CONF)
    assert not checker.sources()
