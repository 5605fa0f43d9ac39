"""RFC 4475 torture tests, replayed from the RFC's own bytes.

Every message of the RFC 4475 archive (``shared/testdata/rfc4475/*.dat``,
``test.dat`` excepted: no RFC section describes it) is parsed with
``parse_message`` and checked with ``validate_request`` / ``validate_response``.
The expected outcome of each file is the one its RFC section states:
``VALID`` (parses and validates), ``DROP`` (no response is possible) or the
status code to answer.  Where the RFC lets an element be liberal (§3.1.2.9-15)
callway takes the strict choice the RFC calls reasonable: 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from callway.sip.errors import ParseError
from callway.sip.headers import CSeq
from callway.sip.message import Message, Request, Response, parse_message
from callway.sip.uri import AbsoluteURI, SipURI, unescape
from callway.sip.validate import accepts, validate_request, validate_response


def _testdata_dir() -> Path:
    """``shared/testdata`` beside the repository (walk up from this file)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/testdata not found beside the repository")


RFC4475 = _testdata_dir() / "rfc4475"
VALID: Literal["valid"] = "valid"
DROP: Literal["drop"] = "drop"
Outcome = int | Literal["valid", "drop"]


@dataclass(frozen=True)
class Case:
    """One RFC 4475 message: its section and the outcome the RFC expects."""

    section: str
    expect: Outcome
    options: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    # §3.1.1 valid messages: parsers must accept them.
    "wsinv": Case("3.1.1.1", VALID),
    "intmeth": Case("3.1.1.2", VALID),
    "esc01": Case("3.1.1.3", VALID),
    "escnull": Case("3.1.1.4", VALID),
    "esc02": Case("3.1.1.5", VALID),
    "lwsdisp": Case("3.1.1.6", VALID),
    "longreq": Case("3.1.1.7", VALID),
    "dblreq": Case("3.1.1.8", VALID),
    "semiuri": Case("3.1.1.9", VALID),
    "transports": Case("3.1.1.10", VALID),
    "mpart01": Case("3.1.1.11", VALID),
    "unreason": Case("3.1.1.12", VALID),
    "noreason": Case("3.1.1.13", VALID),
    # §3.1.2 invalid messages.
    "badinv01": Case("3.1.2.1", 400),
    "clerr": Case("3.1.2.2", 400),
    "ncl": Case("3.1.2.3", 400),
    "scalar02": Case("3.1.2.4", 400),
    "scalarlg": Case("3.1.2.5", DROP),  # a response: "simply discard it"
    "quotbal": Case("3.1.2.6", 400),
    "ltgtruri": Case("3.1.2.7", 400),
    "lwsruri": Case("3.1.2.8", 400),
    "lwsstart": Case("3.1.2.9", 400),
    "trws": Case("3.1.2.10", 400),
    "escruri": Case("3.1.2.11", 400),
    "baddate": Case("3.1.2.12", 400),
    "regbadct": Case("3.1.2.13", 400),
    "badaspec": Case("3.1.2.14", 400),
    "baddn": Case("3.1.2.15", 400),
    "badvers": Case("3.1.2.16", 505),
    "mismatch01": Case("3.1.2.17", 400),
    "mismatch02": Case("3.1.2.18", 501),  # "501 ... has better future-proof characteristics"
    "bigcode": Case("3.1.2.19", DROP),
    # §3.2 transaction layer: parses; the transaction layer decides.
    "badbranch": Case("3.2.1", VALID),
    # §3.3 application layer.
    "insuf": Case("3.3.1", 400),
    "unkscm": Case("3.3.2", 416),
    "novelsc": Case("3.3.3", 416),  # "never accept this scheme ... 416"
    "unksm2": Case("3.3.4", VALID),  # proxies process it; only a registrar answers 400
    "bext01": Case("3.3.5", 420),
    "invut": Case("3.3.6", 415, {"accept": ("application/sdp",)}),
    "regaut01": Case("3.3.7", VALID),
    "multi01": Case("3.3.8", 400),
    "mcl01": Case("3.3.9", 400),
    "bcast": Case("3.3.10", DROP, {"forwarding": True}),
    "zeromf": Case("3.3.11", 483, {"forwarding": True}),
    "cparam01": Case("3.3.12", VALID),
    "cparam02": Case("3.3.13", VALID),
    "regescrt": Case("3.3.14", VALID),
    "sdp01": Case("3.3.15", VALID),  # syntactically valid; the UAS answers 406 (see below)
    # §3.4 backward compatibility.
    "inv2543": Case("3.4.1", VALID),
}


def load(name: str) -> bytes:
    """The RFC's bytes of one message (binary: CRLF, NULs and bare CRs kept)."""
    return (RFC4475 / f"{name}.dat").read_bytes()


def outcome(data: bytes, **options: Any) -> Outcome:
    """What a server does with ``data``: VALID, DROP or the status it answers."""
    try:
        message = parse_message(data)
        if isinstance(message, Request):
            validate_request(message, **options)
        else:
            validate_response(message, **options)
    except ParseError as exc:
        return DROP if exc.status_hint is None else exc.status_hint
    return VALID


def request(name: str) -> Request:
    message = parse_message(load(name))
    assert isinstance(message, Request)
    return message


def response(name: str) -> Response:
    message = parse_message(load(name))
    assert isinstance(message, Response)
    return message


def test_every_archive_file_has_an_expectation() -> None:
    names = {path.stem for path in RFC4475.glob("*.dat")}
    assert names - {"test"} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outcome_is_the_one_the_rfc_states(name: str) -> None:
    case = CASES[name]
    assert outcome(load(name), **case.options) == case.expect, case.section


def _parses(name: str) -> bool:
    try:
        parse_message(load(name))
    except ParseError:
        return False
    return True


@pytest.mark.parametrize("name", [name for name in sorted(CASES) if _parses(name)])
def test_serialize_then_parse_keeps_start_line_headers_and_body(name: str) -> None:
    message = parse_message(load(name))
    again = parse_message(message.serialize())
    assert again.start_line() == message.start_line()
    assert _headers(again) == _headers(message)
    assert again.body == message.body
    assert again.get("content-length") == str(len(message.body))
    assert type(again) is type(message)


def _headers(message: Message) -> list[list[str]]:
    return [h for h in message.headers if h[0] != "content-length"]


def test_unchanged_message_is_forwarded_byte_for_byte() -> None:
    data = load("wsinv")
    assert parse_message(data).to_bytes() == data


# -- §3.1.1 valid messages: what the parser must make of them ---------------------


def test_wsinv_short_tortuous_invite() -> None:
    msg = request("wsinv")
    assert msg.method == "INVITE"
    assert msg.sip_uri.params == {"unknownparam": None}
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert msg.cseq == CSeq(9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.get("subject") == ""
    (contact,) = msg.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.get_all("route") == [
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    ]
    assert len(msg.body) == 150


def test_intmeth_wide_range_of_valid_characters() -> None:
    msg = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method and msg.cseq.method == method
    uri = msg.sip_uri
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_percent_escapes_are_kept_and_can_be_unescaped() -> None:
    msg = request("esc01")
    assert msg.sip_uri.user == "sips%3Auser%40example.com"
    assert unescape(msg.sip_uri.user or "") == "sips:user@example.com"
    assert unescape(msg.to.sip_uri.user or "") == "user"
    assert unescape(msg.from_.sip_uri.user or "") == "I have spaces"
    assert msg.content_type == "application/sdp"  # compact "c:"
    (contact,) = msg.contacts
    assert unescape(contact.sip_uri.user or "") == "caller"
    assert contact.sip_uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}


def test_escnull_escaped_nulls_do_not_shorten_the_user() -> None:
    msg = request("escnull")
    assert unescape(msg.to.sip_uri.user or "") == "null-\x00-null"
    users = [unescape(c.sip_uri.user or "") for c in msg.contacts]
    assert users == ["\x00", "\x00\x00"]


def test_esc02_percent_that_is_not_an_escape() -> None:
    msg = request("esc02")
    assert msg.method == "RE%47IST%45R"  # not REGISTER: methods are not unescaped
    assert msg.to.display == "%Z%45"
    assert msg.via.branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is an unknown header, not a third Contact.
    assert [c.sip_uri.user for c in msg.contacts] == ["alias1", "alias3"]
    assert msg.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_no_space_between_display_name_and_angle() -> None:
    assert request("lwsdisp").from_.display == "caller"


def test_longreq_long_values_and_34_vias() -> None:
    msg = request("longreq")
    assert len(msg.vias) == 34
    assert msg.vias[0].host == "sip33.example.com"
    assert msg.vias[-1].params["received"] == "192.0.2.5"
    assert msg.to.sip_uri.port == 6000
    assert len(msg.to.sip_uri.params) == 3
    tag = msg.from_.tag or ""
    assert len(tag) == 155 and tag.startswith("129829829") and tag.endswith("2982424")
    assert len(msg.body) == 150


def test_dblreq_trailing_octets_in_a_datagram_are_ignored() -> None:
    data = load("dblreq")
    msg = request("dblreq")
    assert msg.method == "REGISTER"
    assert msg.body == b""
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # compact "I:"
    assert b"INVITE" not in msg.to_bytes()
    assert data.startswith(msg.to_bytes())


def test_semiuri_user_part_keeps_its_semicolon() -> None:
    uri = request("semiuri").sip_uri
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com"
    assert uri.params == {}


def test_semiuri_folded_accept_list() -> None:
    assert request("semiuri").get_all("accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_known_and_unknown() -> None:
    transports = [via.transport for via in request("transports").vias]
    assert transports == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body_framed_by_content_length() -> None:
    msg = request("mpart01")
    assert len(msg.body) == 553
    assert b"\x00" in msg.body
    assert msg.content_type == "multipart/mixed"


def test_unreason_and_noreason_reason_phrases() -> None:
    assert response("unreason").reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = response("noreason")
    assert (noreason.status, noreason.reason) == (100, "")


# -- §3.1.2 invalid messages ------------------------------------------------------


def test_baddn_rejected_for_the_display_name_not_only_for_truncation() -> None:
    # The archive's baddn.dat lacks the final CRLF (see SOURCES.md); complete it.
    assert outcome(load("baddn") + b"\r\n") == 400
    with pytest.raises(ParseError, match="display name"):
        parse_message(load("baddn") + b"\r\n").from_  # noqa: B018


def test_mismatch02_is_400_when_the_method_is_known() -> None:
    known = {"NEWMETHOD", "INVITE"}
    assert outcome(load("mismatch02"), known_methods=known) == 400


def test_clerr_over_a_stream_is_also_rejected() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(load("clerr"), stream=True)
    assert info.value.status_hint == 400


# -- §3.2 and §3.3 ----------------------------------------------------------------


def test_badbranch_branch_is_just_the_magic_cookie() -> None:
    assert request("badbranch").via.branch == "z9hG4bK"


def test_unkscm_is_answered_as_416_by_a_proxy_too() -> None:
    assert outcome(load("unkscm"), forwarding=True) == 416
    assert isinstance(request("unkscm").uri, AbsoluteURI)


def test_unksm2_header_uris_of_other_schemes_parse() -> None:
    msg = request("unksm2")
    assert isinstance(msg.to.uri, AbsoluteURI) and msg.to.uri.scheme == "isbn"
    assert isinstance(msg.from_.uri, AbsoluteURI) and msg.from_.uri.scheme == "http"
    assert [c.uri.scheme for c in msg.contacts] == ["name"]
    # A registrar answers 400: the To of a REGISTER must be a SIP or SIPS AOR.
    with pytest.raises(ParseError):
        msg.to.sip_uri  # noqa: B018


def test_bext01_uas_lists_require_tags_in_unsupported() -> None:
    with pytest.raises(ParseError) as info:
        validate_request(request("bext01"))
    assert info.value.status_hint == 420
    assert info.value.headers == (
        ("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),
    )


def test_bext01_proxy_lists_proxy_require_tags_in_unsupported() -> None:
    with pytest.raises(ParseError) as info:
        validate_request(request("bext01"), forwarding=True, supported=("nothingsupportsthis",))
    assert info.value.status_hint == 420
    assert info.value.headers == (
        ("Unsupported", "noProxiesSupportThis, norDoAnyProxiesSupportThis"),
    )


def test_bext01_passes_when_every_tag_is_supported() -> None:
    tags = ("nothingSupportsThis", "nothingSupportsThisEither")
    validate_request(request("bext01"), supported=tags)


def test_invut_is_processed_by_a_proxy_and_415_at_an_endpoint() -> None:
    assert outcome(load("invut")) == VALID
    assert outcome(load("invut"), forwarding=True, accept=("application/sdp",)) == VALID
    with pytest.raises(ParseError) as info:
        validate_request(request("invut"), accept=("application/sdp",))
    assert info.value.headers == (("Accept", "application/sdp"),)


def test_regaut01_unknown_authorization_scheme_is_kept() -> None:
    auth = request("regaut01").get("authorization")
    assert auth == "NoOneKnowsThisScheme opaque-data=here"


def test_bcast_is_dropped_by_a_uac_and_forwarded_only_without_broadcast() -> None:
    assert outcome(load("bcast")) == DROP  # two Vias at a UAC (RFC 3261 §8.1.3.3)
    harmless = load("bcast").replace(b"255.255.255.255", b"192.0.2.7")
    assert outcome(harmless, forwarding=True) == VALID


def test_zeromf_is_answered_by_the_element_it_is_addressed_to() -> None:
    assert outcome(load("zeromf")) == VALID  # e.g. an OPTIONS to the server itself
    assert request("zeromf").max_forwards == 0


def test_cparam01_unknownparam_is_a_contact_param() -> None:
    (contact,) = request("cparam01").contacts
    assert contact.params == {"unknownparam": None}
    assert contact.sip_uri.params == {}
    assert contact.sip_uri.user == "+19725552222"


def test_cparam02_unknownparam_is_a_uri_param() -> None:
    (contact,) = request("cparam02").contacts
    assert contact.params == {}
    assert contact.sip_uri.params == {"unknownparam": None}


def test_regescrt_contact_keeps_its_escaped_route_header() -> None:
    (contact,) = request("regescrt").contacts
    assert contact.sip_uri.headers == {"Route": "%3Csip:sip.example.com%3E"}
    assert "?Route=%3Csip:sip.example.com%3E" in str(contact)


def test_sdp01_accept_without_sdp_lets_the_uas_answer_406() -> None:
    msg = request("sdp01")
    assert not accepts(msg, "application/sdp")
    assert accepts(msg, "text/nobodyKnowsThis")


def test_inv2543_rfc2543_request_is_accepted() -> None:
    msg = request("inv2543")
    assert msg.max_forwards is None
    assert msg.via.branch is None
    assert msg.from_.tag is None
    assert isinstance(msg.sip_uri, SipURI)
    assert msg.body.startswith(b"v=0")
