"""RFC 5118 IPv6 torture tests, replayed from the RFC's own bytes.

Each file of ``shared/testdata/rfc5118`` gets the outcome its RFC 5118 §4
section states.  Two choices are recorded here:

* §4.3 ``port-ambiguous``: "From a parsing perspective, the request below is
  well-formed"; ``[2001:db8::10:5070]`` is one IPv6 address and no port.
* §4.10 ``ipv6-bug-abnf-3-colons``: the RFC *allows* a robust parser to skip
  the extra colon; callway follows the ABNF as corrected by RFC 5954 §4.1 and
  rejects the invalid address with 400 rather than guess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from callway.sip.errors import ParseError
from callway.sip.message import Message, Request, parse_message
from callway.sip.uri import SipURI
from callway.sip.validate import validate_request


def _testdata_dir() -> Path:
    """``shared/testdata`` beside the repository (walk up from this file)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/testdata not found beside the repository")


RFC5118 = _testdata_dir() / "rfc5118"
VALID: Literal["valid"] = "valid"

CASES: dict[str, tuple[str, int | Literal["valid"]]] = {
    "ipv6-good": ("4.1", VALID),
    "ipv6-bad": ("4.2", 400),
    "port-ambiguous": ("4.3", VALID),
    "port-unambiguous": ("4.4", VALID),
    "via-received-param-with-delim": ("4.5", VALID),
    "via-received-param-no-delim": ("4.5", VALID),
    "ipv6-in-sdp": ("4.6", VALID),
    "mult-ip-in-header": ("4.7", VALID),
    "mult-ip-in-sdp": ("4.8", VALID),
    "ipv4-mapped-ipv6": ("4.9", VALID),
    "ipv6-bug-abnf-3-colons": ("4.10", 400),
    "ipv6-correct-abnf-2-colons": ("4.10", VALID),
}


def load(name: str) -> bytes:
    return (RFC5118 / name).read_bytes()


def request(name: str) -> Request:
    message = parse_message(load(name))
    assert isinstance(message, Request)
    return message


def outcome(data: bytes) -> int | Literal["valid"]:
    try:
        message = parse_message(data)
        assert isinstance(message, Request)
        validate_request(message)
    except ParseError as exc:
        assert exc.status_hint is not None
        return exc.status_hint
    return VALID


def test_every_file_has_an_expectation() -> None:
    names = {path.name for path in RFC5118.iterdir() if path.name != "SOURCES.md"}
    assert names == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outcome_is_the_one_the_rfc_states(name: str) -> None:
    section, expect = CASES[name]
    assert outcome(load(name)) == expect, section


@pytest.mark.parametrize("name", sorted(n for n, (_, e) in CASES.items() if e == VALID))
def test_serialize_then_parse_keeps_start_line_headers_and_body(name: str) -> None:
    message = parse_message(load(name))
    again = parse_message(message.serialize())
    assert again.start_line() == message.start_line()
    assert _headers(again) == _headers(message)
    assert again.body == message.body


def _headers(message: Message) -> list[list[str]]:
    return [h for h in message.headers if h[0] != "content-length"]


def test_ipv6_good_references_in_request_uri_via_and_contact() -> None:
    msg = request("ipv6-good")
    assert (msg.sip_uri.host, msg.sip_uri.port) == ("[2001:db8::10]", None)
    assert msg.via.sent_by == ("[2001:db8::9:1]", None)
    assert msg.contacts[0].sip_uri.host == "[2001:db8::1]"


def test_ipv6_bad_address_without_brackets_is_rejected() -> None:
    with pytest.raises(ParseError) as info:
        request("ipv6-bad").uri  # noqa: B018
    assert info.value.status_hint == 400


def test_port_ambiguous_port_inside_brackets_is_part_of_the_address() -> None:
    uri = request("port-ambiguous").sip_uri
    assert (uri.host, uri.port) == ("[2001:db8::10:5070]", None)


def test_port_unambiguous_port_after_the_bracket() -> None:
    uri = request("port-unambiguous").sip_uri
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)
    assert str(uri) == "sip:[2001:db8::10]:5070"


def test_via_received_with_and_without_delimiters_both_parse() -> None:
    with_delim = request("via-received-param-with-delim").via
    assert with_delim.params["received"] == "[2001:db8::9:255]"
    assert request("via-received-param-no-delim").via.params["received"] == "2001:db8::9:255"


def test_ipv6_addresses_in_sdp_are_left_in_the_body() -> None:
    msg = request("ipv6-in-sdp")
    assert b"c=IN IP6 2001:db8::20\r\n" in msg.body
    assert msg.sip_uri.host == "[2001:db8::10]"


def test_mult_ip_in_header_mixes_ipv4_and_ipv6_vias() -> None:
    vias = request("mult-ip-in-header").vias
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "[2001:db8::9:1]", 6050),
        ("UDP", "192.0.2.1", None),
        ("TCP", "[2001:db8::9:255]", None),
    ]
    assert vias[2].params["received"] == "192.0.2.200"


def test_mult_ip_in_sdp() -> None:
    body = request("mult-ip-in-sdp").body
    assert b"c=IN IP4 192.0.2.1" in body and b"c=IN IP6 2001:db8::1" in body


def test_ipv4_mapped_ipv6_addresses() -> None:
    msg = request("ipv4-mapped-ipv6")
    assert msg.vias[0].sent_by == ("[::ffff:192.0.2.10]", 19823)
    assert msg.vias[1].sent_by == ("[::ffff:192.0.2.2]", None)
    assert msg.contacts[0].sip_uri.host == "[::ffff:192.0.2.2]"


def test_abnf_bug_three_colons_rejected_two_colons_accepted() -> None:
    with pytest.raises(ParseError):
        request("ipv6-bug-abnf-3-colons").uri  # noqa: B018
    with pytest.raises(ParseError):
        request("ipv6-bug-abnf-3-colons").to  # noqa: B018
    good = request("ipv6-correct-abnf-2-colons")
    assert isinstance(good.uri, SipURI) and good.uri.host == "[2001:db8::192.0.2.1]"
    assert good.to.sip_uri.host == "[2001:db8::192.0.2.1]"
