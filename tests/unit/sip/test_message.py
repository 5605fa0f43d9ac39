"""SIP messages: parse, accessors, mutation, serialize (RFC 3261 §7, §8.2.6, §18.3, §20)."""

from __future__ import annotations

import pytest

from callway.sip.errors import ParseError
from callway.sip.headers import CSeq
from callway.sip.message import Request, Response, make_response, parse_message
from callway.sip.uri import parse_uri

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp; charset=utf-8\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\r"
)


def parse_request(data: bytes, *, stream: bool = False) -> Request:
    message = parse_message(data, stream=stream)
    assert isinstance(message, Request)
    return message


def build(*headers: str, body: bytes = b"", start: str = "OPTIONS sip:a@b SIP/2.0") -> bytes:
    return ("\r\n".join([start, *headers]) + "\r\n\r\n").encode() + body


# -- parsing -----------------------------------------------------------------------------


def test_request_accessors() -> None:
    msg = parse_request(INVITE)
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:bob@biloxi.example.com"
    assert msg.sip_uri.user == "bob"
    assert [v.host for v in msg.vias] == [
        "pc33.atlanta.example.com",
        "bigbox3.site3.atlanta.example.com",
    ]
    assert msg.via.branch == "z9hG4bKnashds8"
    assert msg.to.display == "Bob" and msg.to.tag is None
    assert msg.from_.tag == "1928301774"
    assert msg.call_id == "a84b4c76e66710"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.max_forwards == 70
    assert msg.expires is None
    assert msg.content_type == "application/sdp"
    assert [str(c.uri) for c in msg.contacts] == ["sip:alice@pc33.atlanta.example.com"]
    assert not msg.contact_star
    assert msg.body == b"v=0\r"
    assert repr(msg) == "<Request INVITE sip:bob@biloxi.example.com>"


def test_response_accessors() -> None:
    data = build(
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
        "To: <sip:b@h>;tag=x",
        "From: <sip:a@h>;tag=y",
        "Call-ID: c",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        start="SIP/2.0 486 Busy Here",
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (486, "Busy Here")
    assert msg.to.tag == "x"
    assert repr(msg) == "<Response 486 Busy Here>"


def test_compact_forms_are_expanded() -> None:
    data = build(
        "v: SIP/2.0/UDP h;branch=z9hG4bK1",
        "t: sip:b@h",
        "f: sip:a@h;tag=1",
        "i: abc",
        "m: <sip:a@c>",
        "c: text/plain",
        "l: 2",
        "k: 100rel",
        body=b"hi",
    )
    msg = parse_request(data)
    assert [key for key, _ in msg.headers] == [
        "via", "to", "from", "call-id", "contact", "content-type", "content-length", "supported",
    ]  # fmt: skip
    assert msg.get("Call-ID") == msg.get("i") == "abc"
    assert msg.content_type == "text/plain"
    assert msg.body == b"hi"


def test_folded_headers_are_unfolded_with_one_space() -> None:
    data = build(
        "Subject: first",
        "  second",
        "\tthird",
        "Contact:",
        "  <sip:a@b>",
        "Empty:",
    )
    msg = parse_request(data)
    assert msg.get("subject") == "first second third"
    assert msg.get("contact") == "<sip:a@b>"
    assert msg.get("empty") == ""


def test_multi_value_headers_lines_and_commas() -> None:
    data = build(
        "Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2",
        "Route: <sip:p1;lr>",
        "Via: SIP/2.0/UDP c;branch=z9hG4bK3",
        "Route: <sip:p2;lr>, <sip:p3;lr>",
        'Contact: "Doe, J" <sip:a@b>, <sip:c@d>',
    )
    msg = parse_request(data)
    assert [v.host for v in msg.vias] == ["a", "b", "c"]
    assert msg.get_all("route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    assert msg.count("route") == 2
    assert [c.display for c in msg.contacts] == ["Doe, J", None]
    assert "ROUTE" in msg and "record-route" not in msg


def test_contact_star() -> None:
    msg = parse_request(build("Contact: *", "Expires: 0"))
    assert msg.contact_star
    assert msg.contacts == []
    assert msg.expires == 0


def test_leading_crlfs_are_skipped() -> None:
    msg = parse_request(b"\r\n\r\n" + INVITE)
    assert msg.to_bytes() == INVITE


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("INVITE sip:a@b SIP/3.0", 505),
        ("INVITE sip:a@b SIP/7.0", 505),
        ("INVITE sip:a@b", 400),
        ("INVITE  sip:a@b SIP/2.0", 400),
        ("INVITE sip:a@b SIP/2.0 ", 400),
        ("INVITE sip:a@b; lr SIP/2.0", 400),
        ("INVITE <sip:a@b> SIP/2.0", 400),
        ("IN<VITE sip:a@b SIP/2.0", 400),
        ("INVITÉ sip:a@b SIP/2.0", 400),
        ("HTTP/1.1 200 OK", 400),
        ("SIP/2.0 099 Low", None),
        ("SIP/2.0 700 High", None),
        ("SIP/2.0 2OO OK", None),
        ("SIP/2.0 \u00b200 OK", None),
        ("SIP/2.0 4294967301 big", None),
        ("SIP/3.0 200 OK", None),
        ("SIP/2.0 200", 400),
    ],
)
def test_bad_start_lines(start: str, status: int | None) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(build("Call-ID: x", start=start))
    assert info.value.status_hint == status


def test_version_is_case_insensitive() -> None:
    assert parse_request(build(start="OPTIONS sip:a@b sip/2.0")).method == "OPTIONS"


@pytest.mark.parametrize(
    "lines",
    [
        ["Via SIP/2.0/UDP h"],
        ["Bad Name: x"],
        [": no name"],
        ["Na\u00efve: x"],
        [" leading continuation"],
    ],
)
def test_bad_header_lines(lines: list[str]) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(build(*lines))
    assert info.value.status_hint == 400


def test_no_empty_line_after_headers() -> None:
    with pytest.raises(ParseError):
        parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n")


# -- Content-Length (§18.3, §20.14) ---------------------------------------------------


def test_content_length_shorter_than_datagram_truncates() -> None:
    msg = parse_request(build("Content-Length: 2", body=b"hi there"))
    assert msg.body == b"hi"
    assert msg.to_bytes().endswith(b"\r\n\r\nhi")


def test_content_length_absent_over_udp_takes_the_rest() -> None:
    assert parse_request(build(body=b"rest")).body == b"rest"


@pytest.mark.parametrize(
    ("headers", "body", "stream"),
    [
        (["Content-Length: 10"], b"short", False),
        (["Content-Length: -1"], b"", False),
        (["Content-Length: 1e3"], b"", False),
        (["Content-Length: 99999999999"], b"", False),
        (["Content-Length: 5", "l: 4"], b"hello", False),
        ([], b"body", True),
        (["Content-Length: 10"], b"short", True),
    ],
)
def test_content_length_errors(headers: list[str], body: bytes, stream: bool) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(build(*headers, body=body), stream=stream)
    assert info.value.status_hint == 400


def test_repeated_equal_content_length_is_accepted() -> None:
    msg = parse_request(build("Content-Length: 2", "l: 2", body=b"ok"))
    assert msg.body == b"ok"


def test_stream_without_body_needs_no_content_length() -> None:
    assert parse_request(build(), stream=True).body == b""


# -- mutation and serialization ----------------------------------------------------------


def test_unchanged_message_serializes_to_its_bytes() -> None:
    msg = parse_request(INVITE)
    assert msg.to_bytes() is INVITE or msg.to_bytes() == INVITE
    assert bytes(msg) == INVITE


def test_serialize_rebuilds_with_canonical_names() -> None:
    msg = parse_request(build("v: SIP/2.0/UDP h", "i: x", "cseq: 1 OPTIONS", "l: 2", body=b"ok"))
    assert msg.serialize() == (
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )


def test_prepend_via_and_serialize_round_trip() -> None:
    msg = parse_request(INVITE)
    msg.prepend("v", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp1")
    assert msg.via.host == "proxy.example.com"
    again = parse_request(msg.to_bytes())
    assert [v.host for v in again.vias] == [
        "proxy.example.com",
        "pc33.atlanta.example.com",
        "bigbox3.site3.atlanta.example.com",
    ]
    assert again.body == msg.body
    assert again.get("max-forwards") == "70"


def test_prepend_splices_into_the_wire_bytes() -> None:
    data = b"\r\n" + INVITE.replace(b"Via:", b"v :", 1)
    msg = parse_request(data)
    msg.prepend("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp")
    line = b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\n"
    assert msg.to_bytes() == data[2:].replace(b"v :", line + b"v :", 1)
    msg.prepend("Record-Route", "<sip:proxy;lr>")
    assert msg.to_bytes().startswith(
        INVITE.split(b"\r\n")[0] + b"\r\nRecord-Route: <sip:proxy;lr>\r\n"
    )
    again = parse_request(msg.to_bytes())
    assert again.headers == parse_request(msg.serialize()).headers


def test_prepend_into_a_message_without_headers() -> None:
    msg = parse_request(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    msg.prepend("Via", "SIP/2.0/UDP h")
    assert msg.to_bytes() == b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n"


def test_set_replaces_every_line_in_place() -> None:
    msg = parse_request(build("X-A: 1", "Route: <sip:x>", "X-B: 2", "Route: <sip:y>"))
    msg.set("route", "<sip:z;lr>")
    assert msg.headers == [["x-a", "1"], ["route", "<sip:z;lr>"], ["x-b", "2"]]
    msg.set("New", 5)
    assert msg.headers[-1] == ["new", "5"]


def test_add_remove_count_and_pop_first() -> None:
    msg = parse_request(build("Route: <sip:a;lr>, <sip:b;lr>", "Route: <sip:c;lr>"))
    assert msg.pop_first("route") == "<sip:a;lr>"
    assert msg.get_all("route") == ["<sip:b;lr>", "<sip:c;lr>"]
    assert msg.pop_first("route") == "<sip:b;lr>"
    assert msg.pop_first("route") == "<sip:c;lr>"
    assert msg.pop_first("route") is None
    msg.add("Record-Route", "<sip:p;lr>")
    msg.add("record-route", "<sip:q;lr>")
    assert msg.count("Record-Route") == 2
    assert msg.remove("record-route") == 2
    assert msg.remove("record-route") == 0


def test_prepend_without_existing_header_goes_first() -> None:
    msg = parse_request(build("Call-ID: x"))
    msg.prepend("Via", "SIP/2.0/UDP h")
    assert msg.headers[0] == ["via", "SIP/2.0/UDP h"]


def test_structured_values_follow_mutations() -> None:
    msg = parse_request(INVITE)
    assert msg.to.tag is None
    msg.set("To", "<sip:bob@biloxi.example.com>;tag=abc")
    assert msg.to.tag == "abc"
    msg.set("CSeq", "2 INVITE")
    assert msg.cseq.seq == 2
    assert b"CSeq: 2 INVITE\r\n" in msg.to_bytes()


def test_uri_setter() -> None:
    msg = parse_request(INVITE)
    msg.uri = parse_uri("sip:bob@192.0.2.4:5060")
    assert msg.start_line() == "INVITE sip:bob@192.0.2.4:5060 SIP/2.0"
    assert msg.to_bytes().startswith(b"INVITE sip:bob@192.0.2.4:5060 SIP/2.0\r\n")


def test_constructed_request_serializes() -> None:
    req = Request(
        "OPTIONS",
        "sip:probe@192.0.2.1",
        [("v", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx"), ("Max-Forwards", "70")],
    )
    assert req.to_bytes() == (
        b"OPTIONS sip:probe@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\n"
        b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    assert req.sip_uri.host == "192.0.2.1"


def test_non_sip_request_uri_is_416() -> None:
    req = Request("OPTIONS", "tel:+123")
    with pytest.raises(ParseError) as info:
        req.sip_uri  # noqa: B018
    assert info.value.status_hint == 416


def test_missing_header_accessors_raise_parse_error() -> None:
    msg = parse_request(build())
    for name in ("call_id", "cseq", "from_", "to", "via"):
        with pytest.raises(ParseError, match="missing"):
            getattr(msg, name)
    assert msg.vias == [] and msg.contacts == [] and msg.max_forwards is None


def test_non_utf8_bytes_survive_a_round_trip() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\n\r\n"
    msg = parse_request(data)
    assert msg.serialize() == data.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n")


# -- make_response (§8.2.6.2) ---------------------------------------------------------------


def test_make_response_copies_the_right_headers() -> None:
    req = parse_request(INVITE)
    resp = make_response(req, 180, to_tag="a6c85cf")
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert [k for k, _ in resp.headers] == ["via", "via", "to", "from", "call-id", "cseq"]
    assert resp.to.tag == "a6c85cf"
    assert resp.from_.tag == "1928301774"
    assert [v.branch for v in resp.vias] == [v.branch for v in req.vias]
    again = parse_message(resp.to_bytes())
    assert isinstance(again, Response) and again.call_id == req.call_id


def test_make_response_100_has_no_to_tag_and_existing_tag_is_kept() -> None:
    req = parse_request(INVITE)
    assert make_response(req, 100, to_tag="x").to.tag is None
    req.set("To", "<sip:bob@biloxi.example.com>;tag=old")
    assert make_response(req, 200, to_tag="new").to.tag == "old"


def test_make_response_reason_extra_headers_and_body() -> None:
    req = parse_request(INVITE)
    resp = make_response(req, 420, "Nope", headers=[("Unsupported", "foo")], body=b"x", to_tag="t")
    assert resp.start_line() == "SIP/2.0 420 Nope"
    assert resp.get("unsupported") == "foo"
    assert resp.to_bytes().endswith(b"Unsupported: foo\r\nContent-Length: 1\r\n\r\nx")
    assert make_response(req, 599).reason == "Server Error"


def test_known_header_name_without_colon_is_refused_even_when_seen_before() -> None:
    """§7.3: a header line needs its colon; names seen earlier must not excuse it."""
    head = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    tail = "To: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\n"
    good = (head + "V: SIP/2.0/UDP g;branch=z9hG4bK2\r\n" + tail + "CSeq: 1 OPTIONS\r\n\r\n")
    assert len(parse_message(good.encode()).get_all("via")) == 2  # "V" is now a known name
    for bare in ("V", "Via", "CSeq"):
        bad = head + bare + "\r\n" + tail + "CSeq: 1 OPTIONS\r\n\r\n"
        with pytest.raises(ParseError, match="without ':'"):
            parse_message(bad.encode())
