"""validate_request / validate_response beyond the RFC 4475 messages (RFC 3261 §8.2, §16.3)."""

from __future__ import annotations

import pytest

from callway.sip.errors import ParseError
from callway.sip.message import Request, Response, parse_message
from callway.sip.uri import parse_uri
from callway.sip.validate import accepts, validate_request, validate_response

BASE = [
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
    "To: <sip:bob@example.com>",
    "From: <sip:alice@example.com>;tag=1",
    "Call-ID: abc@192.0.2.1",
    "Max-Forwards: 70",
]


def req(*extra: str, method: str = "INVITE", body: bytes = b"", cseq: str | None = None) -> Request:
    cseq_line = f"CSeq: {cseq if cseq is not None else '1 ' + method}"
    text = "\r\n".join([f"{method} sip:bob@example.com SIP/2.0", *BASE, cseq_line, *extra])
    message = parse_message(text.encode() + b"\r\n\r\n" + body)
    assert isinstance(message, Request)
    return message


def resp(*vias: str, extra: tuple[str, ...] = ()) -> Response:
    lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for v in vias), *BASE[1:4], "CSeq: 1 INVITE"]
    message = parse_message(("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode())
    assert isinstance(message, Response)
    return message


def status_of(request: Request, **options: object) -> int | None:
    with pytest.raises(ParseError) as info:
        validate_request(request, **options)  # type: ignore[arg-type]
    return info.value.status_hint


def test_a_plain_request_passes() -> None:
    validate_request(req())
    validate_request(req(), forwarding=True)


@pytest.mark.parametrize("missing", ["Via", "To", "From", "Call-ID", "CSeq"])
def test_mandatory_headers(missing: str) -> None:
    lines = ["INVITE sip:b@h SIP/2.0", *BASE, "CSeq: 1 INVITE"]
    text = "\r\n".join(line for line in lines if not line.startswith(missing + ":"))
    message = parse_message(text.encode() + b"\r\n\r\n")
    assert isinstance(message, Request)
    assert status_of(message) == 400


def test_max_forwards_may_be_absent() -> None:
    text = "\r\n".join(["OPTIONS sip:b@h SIP/2.0", *BASE[:4], "CSeq: 1 OPTIONS"])
    message = parse_message(text.encode() + b"\r\n\r\n")
    assert isinstance(message, Request)
    validate_request(message, forwarding=True)


@pytest.mark.parametrize(
    "extra",
    [
        "To: <sip:other@example.com>",
        "Call-ID: other",
        "CSeq: 2 INVITE",
        "Max-Forwards: 69",
        "Expires: 10\r\nExpires: 20",
        "Content-Type: text/plain\r\nContent-Type: application/sdp",
    ],
)
def test_differing_single_instance_headers(extra: str) -> None:
    assert status_of(req(*extra.split("\r\n"))) == 400


def test_identical_repeated_single_instance_headers_are_tolerated() -> None:
    validate_request(req("Max-Forwards:  70", "Expires: 5", "Expires: 5"))


@pytest.mark.parametrize(
    "extra",
    [
        "Max-Forwards: 256",
        "Expires: 4294967296",
        "Expires: -1",
        "Min-Expires: 99999999999",
        "Retry-After: 4294967296",
        "Contact: <sip:a@b>;expires=4294967296",
        "Contact: <sip:a b>",
        "Route: sip:proxy.example.com",
        "Record-Route: <sip:p1>, junk",
        'Warning: 1812 overture "In Progress"',
        "Date: Fri, 01 Jan 2010 16:00:00 EST",
        "Date: Fri, 01 Jan 2010 16:00:00 UT",
        "Date: Friday, 01 Jan 2010 16:00:00 GMT",
        "Date: Fri, 32 Jan 2010 16:00:00 GMT",
        "Date: Fri, 01 Jan 2010 25:00:00 GMT",
        "Call-ID: has space",
        "Call-ID: a@b@c",
    ],
)
def test_malformed_or_out_of_range_fields(extra: str) -> None:
    assert status_of(req(extra)) == 400


@pytest.mark.parametrize(
    "extra",
    [
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "Retry-After: 18000;duration=3600",
        "Retry-After: 120 (I'm in a meeting)",
        "Warning: 307 isi.edu \"Session parameter 'foo' not understood\"",
        "Contact: *",
        'Route: <sip:p1.example.com;lr>, "Proxy" <sip:p2.example.com;lr>',
        "Expires: 4294967295",
    ],
)
def test_well_formed_optional_fields(extra: str) -> None:
    validate_request(req(extra))


def test_cseq_number_must_be_below_2_31() -> None:
    validate_request(req(cseq="2147483647 INVITE"))
    assert status_of(req(cseq="2147483648 INVITE")) == 400


def test_cseq_method_mismatch() -> None:
    assert status_of(req(cseq="1 OPTIONS")) == 400
    assert status_of(req(method="FOO", cseq="1 BAR")) == 501
    validate_request(req(method="FOO"))  # unknown methods are the application's 501


def test_ack_errors_are_dropped_not_answered() -> None:
    assert status_of(req(method="ACK", cseq="1 INVITE")) is None
    assert status_of(req("Max-Forwards: 0", method="ACK"), forwarding=True) is None


def test_request_uri_checks() -> None:
    message = req()
    message.uri = parse_uri("sips:carol@chicago.example.com;transport=tls")
    validate_request(message)
    message.uri = parse_uri("sip:carol@chicago.example.com?Subject=hi")
    assert status_of(message) == 400
    text = "\r\n".join(["OPTIONS tel:+1234 SIP/2.0", *BASE, "CSeq: 1 OPTIONS"])
    tel = parse_message(text.encode() + b"\r\n\r\n")
    assert isinstance(tel, Request)
    assert status_of(tel) == 416
    bad = parse_message(
        (
            "\r\n".join(["OPTIONS sip:a@b:99999 SIP/2.0", *BASE, "CSeq: 1 OPTIONS"]) + "\r\n\r\n"
        ).encode()
    )
    assert isinstance(bad, Request)
    assert status_of(bad) == 400


def test_max_forwards_zero_only_matters_when_forwarding() -> None:
    message = req(method="OPTIONS")
    message.set("Max-Forwards", "0")
    validate_request(message)
    with pytest.raises(ParseError) as info:
        validate_request(message, forwarding=True)
    assert info.value.status_hint == 483


def test_require_and_proxy_require_by_role() -> None:
    message = req("Require: 100rel, Timer", "Proxy-Require: sec-agree")
    with pytest.raises(ParseError) as info:
        validate_request(message, supported=["100rel"])
    assert info.value.status_hint == 420
    assert info.value.headers == (("Unsupported", "Timer"),)
    validate_request(message, supported=["100REL", "timer"])
    with pytest.raises(ParseError) as info:
        validate_request(message, supported=["100rel", "timer"], forwarding=True)
    assert info.value.headers == (("Unsupported", "sec-agree"),)
    validate_request(message, supported=["sec-agree"], forwarding=True)


def test_require_is_ignored_in_cancel_and_ack() -> None:
    validate_request(req("Require: foo", method="CANCEL"))
    validate_request(req("Require: foo", method="ACK"))


def test_content_type_at_a_uas() -> None:
    sdp = req("Content-Type: application/sdp", body=b"v=0\r\n")
    validate_request(sdp, accept=["application/sdp"])
    validate_request(sdp, accept=["application/*"])
    validate_request(sdp, accept=["*/*"])
    validate_request(req(), accept=["application/sdp"])  # no body: nothing to understand
    text = req("Content-Type: text/html", body=b"<p>")
    with pytest.raises(ParseError) as info:
        validate_request(text, accept=["application/sdp", "application/pidf+xml"])
    assert info.value.status_hint == 415
    assert info.value.headers == (("Accept", "application/sdp, application/pidf+xml"),)
    assert status_of(req(body=b"v=0"), accept=["application/sdp"]) == 400
    gz = req("Content-Type: application/sdp", "Content-Encoding: gzip", body=b"\x1f\x8b")
    assert status_of(gz, accept=["application/sdp"]) == 415


def test_accepts() -> None:
    assert accepts(req(), "application/sdp")  # no Accept: SDP is assumed (§20.1)
    assert not accepts(req(), "text/plain")
    message = req("Accept: application/sdp;level=1, text/*")
    assert accepts(message, "Application/SDP")
    assert accepts(message, "text/plain")
    assert not accepts(message, "image/png")
    assert not accepts(req("Accept:"), "application/sdp")


# -- responses -------------------------------------------------------------------------


def test_response_at_a_uac() -> None:
    validate_response(resp("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"))
    with pytest.raises(ParseError) as info:
        validate_response(resp("SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b;branch=z9hG4bK2"))
    assert info.value.status_hint is None


def test_response_at_a_proxy() -> None:
    ours = "SIP/2.0/UDP proxy;branch=z9hG4bK1"
    validate_response(resp(ours), forwarding=True)  # meant for the proxy itself
    validate_response(resp(ours, "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK2"), forwarding=True)
    for upstream in (
        "SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK2",
        "SIP/2.0/UDP 192.0.2.9;received=255.255.255.255;branch=z9hG4bK2",
    ):
        with pytest.raises(ParseError) as info:
            validate_response(resp(ours, upstream), forwarding=True)
        assert info.value.status_hint is None


@pytest.mark.parametrize(
    "extra",
    [("CSeq: 2 INVITE",), ("Retry-After: 949302838503028349304023988",), ("Warning: 1 a b",)],
)
def test_bad_responses_are_dropped(extra: tuple[str, ...]) -> None:
    with pytest.raises(ParseError) as info:
        validate_response(resp("SIP/2.0/UDP h;branch=z9hG4bK1", extra=extra))
    assert info.value.status_hint is None


def test_response_without_via_is_dropped() -> None:
    message = parse_message(
        ("\r\n".join(["SIP/2.0 200 OK", *BASE[1:4], "CSeq: 1 INVITE"]) + "\r\n\r\n").encode()
    )
    assert isinstance(message, Response)
    with pytest.raises(ParseError) as info:
        validate_response(message)
    assert info.value.status_hint is None
