"""NAT helpers: external addresses per local_net, rewrite_contact."""

from __future__ import annotations

import ipaddress

from callway.app.nat import NatPolicy, is_local
from callway.config.pjsip import parse_pjsip
from callway.core.address import Address
from callway.pbx.model import Transport
from callway.pbx.nat import rewrite_contact_uri

CONF = """
[transport-udp]
type=transport
protocol=udp
bind=0.0.0.0:5060
external_signaling_address=198.51.100.7
external_media_address=198.51.100.8
local_net=192.168.0.0/16
local_net=10.0.0.0/8

[transport-tcp]
type=transport
protocol=tcp
bind=192.168.1.2:5060
"""


def test_policy_from_pjsip_conf() -> None:
    policy = NatPolicy.from_config(parse_pjsip(CONF, "pjsip.conf"))
    local = ("192.168.1.2", 5060)
    assert policy.signaling(local, "udp", "203.0.113.5") == ("198.51.100.7", 5060)
    assert policy.signaling(local, "udp", "192.168.7.7") == local  # inside local_net
    assert policy.signaling(local, "udp", "127.0.0.1") == local  # loopback is local
    assert policy.signaling(local, "tcp", "203.0.113.5") == local  # no NAT on that transport
    assert policy.media_host(local, "udp", "192.168.1.2", "203.0.113.5") == "198.51.100.8"
    assert policy.media_host(local, "udp", "192.168.1.2", "10.1.1.1") == "192.168.1.2"


def test_external_port_and_empty_policy() -> None:
    transport = Transport("t", bind_host="10.0.0.2", bind_port=5060,
                          external_signaling_address="198.51.100.7",
                          external_signaling_port=15060)  # fmt: skip
    policy = NatPolicy((transport,))
    assert policy.signaling(("10.0.0.2", 5060), "udp", "203.0.113.5") == ("198.51.100.7", 15060)
    assert policy.media_host(("10.0.0.2", 5060), "udp", "10.0.0.2", "203.0.113.5") == "10.0.0.2"
    assert NatPolicy().signaling(("10.0.0.2", 5060), "udp", "203.0.113.5") == ("10.0.0.2", 5060)


def test_is_local() -> None:
    nets = (ipaddress.ip_network("192.168.0.0/16"),)
    assert is_local("192.168.3.4", nets)
    assert not is_local("203.0.113.5", nets)
    assert not is_local("pbx.example.com", nets)
    assert is_local("::1", nets)


def test_rewrite_contact() -> None:
    udp = Address("udp", "203.0.113.5", 40000)
    tcp = Address("tcp", "203.0.113.5", 40001)
    assert (
        rewrite_contact_uri("sip:8005@192.168.1.10:5060;line=x", udp)
        == "sip:8005@203.0.113.5:40000;line=x"
    )
    assert rewrite_contact_uri("sip:8005@192.168.1.10", tcp) == (
        "sip:8005@203.0.113.5:40001;transport=tcp"
    )
    assert rewrite_contact_uri("tel:+123", udp) == "tel:+123"
    assert rewrite_contact_uri("sip:8005@[fd00::1]:5060", Address("udp", "2001:db8::5", 7)) == (
        "sip:8005@[2001:db8::5]:7"
    )
