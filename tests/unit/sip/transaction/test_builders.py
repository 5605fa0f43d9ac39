"""build_cancel (RFC 3261 §9.1); build_ack is covered with the INVITE client transaction."""

from __future__ import annotations

from callway.sip.message import parse_message
from callway.sip.transaction import build_cancel
from tests.unit.sip.transaction.factories import make_request


def test_cancel_copies_the_request_identity() -> None:
    invite = make_request(
        "INVITE", cseq=314, routes=("<sip:p1.example.com;lr>",), uri="sip:bob@b.example"
    )
    invite.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKlower")
    invite.body = b"v=0\r\n"
    cancel = build_cancel(invite)
    assert cancel.start_line() == "CANCEL sip:bob@b.example SIP/2.0"
    assert cancel.get_all("via") == [invite.get_all("via")[0]]
    assert cancel.via.branch == invite.via.branch
    for name in ("from", "to", "call-id", "max-forwards"):
        assert cancel.get(name) == invite.get(name)
    assert str(cancel.cseq) == "314 CANCEL"
    assert cancel.get_all("route") == ["<sip:p1.example.com;lr>"]
    assert cancel.body == b"" and cancel.get("contact") is None
    reparsed = parse_message(cancel.to_bytes())
    assert reparsed.get("content-length") == "0"


def test_cancel_keeps_the_request_uri_bytes() -> None:
    invite = make_request("INVITE", uri="sip:%61lice@EXAMPLE.com;transport=udp")
    assert build_cancel(invite).start_line().split()[1] == "sip:%61lice@EXAMPLE.com;transport=udp"


def test_cancel_gets_a_default_max_forwards() -> None:
    invite = make_request("INVITE")
    invite.remove("Max-Forwards")
    assert build_cancel(invite).get("max-forwards") == "70"
