"""ng datagrams and requests: cookies, the typed request view, and its errors."""

from __future__ import annotations

import pytest

from callway.ng.bencode import decode, encode
from callway.ng.cache import ReplyCache
from callway.ng.protocol import (
    NgError,
    NgFrameError,
    Request,
    format_reply,
    parse_datagram,
    split_cookie,
)


def test_cookie_is_everything_before_the_first_space() -> None:
    assert split_cookie(b"0_2501_2 d7:command4:pinge") == (b"0_2501_2", b"d7:command4:pinge")
    for bad in (b"", b"nospace", b" d7:command4:pinge"):
        with pytest.raises(NgFrameError):
            split_cookie(bad)


def test_kamailio_offer_is_read_into_typed_fields() -> None:
    payload = encode(
        {
            "command": "offer",
            "call-id": "1-2566@127.0.0.1",
            "from-tag": "2566SIPpTag001",
            "sdp": "v=0\r\n",
            "flags": ["SIP_source_address", "trust-address"],
            "replace": ["origin", "session-connection"],
            "direction": ["internal", "external"],
            "ICE": "remove",
            "received-from": ["IP4", "192.0.2.7"],
            "supports": ["load limit"],
            "unknown-key": {"nested": [1, 2]},
        }
    )
    cookie, request = parse_datagram(b"c1 " + payload)
    assert cookie == b"c1"
    assert request.command == "offer"
    assert request.call_id == "1-2566@127.0.0.1"
    assert request.from_tag == "2566SIPpTag001"
    assert request.to_tag is None
    assert request.sdp == b"v=0\r\n"
    assert request.flags == {"sip-source-address", "trust-address"}
    assert request.replace == {"origin", "session-connection"}
    assert request.direction == ("internal", "external")
    assert request.ice == "remove"
    assert request.received_from == ("IP4", "192.0.2.7")
    assert b"unknown-key" in request.raw


def test_numbers_may_come_as_integers_or_strings() -> None:
    request = Request.from_dict({b"command": b"delete", b"delete-delay": b"5"})
    assert request.delete_delay == 5.0
    request = Request.from_dict({b"command": b"list", b"limit": 3})
    assert request.limit == 3
    request = Request.from_dict({b"command": b"delete", b"delete-delay": b"nan"})
    assert request.delete_delay is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"garbage", "Failed to decode dictionary"),
        (b"l4:pinge", "not a dictionary"),
        (b"de", "No command"),
        (b"d7:commandi1ee", "No command"),
        (b"d7:command5:offer3:sdpi5ee", "Invalid SDP"),
    ],
)
def test_bad_payloads_are_ng_errors_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(NgError, match=reason):
        parse_datagram(b"cookie " + payload)


def test_required_keys_raise_ng_errors() -> None:
    request = Request.from_dict({b"command": b"offer"})
    with pytest.raises(NgError, match="call-id"):
        request.need_call_id()
    with pytest.raises(NgError, match="from-tag"):
        request.need_from_tag()
    with pytest.raises(NgError, match="SDP"):
        request.need_sdp()


def test_reply_is_cookie_space_dictionary() -> None:
    data = format_reply(b"7_1_3", {"result": "pong"})
    cookie, _, body = data.partition(b" ")
    assert cookie == b"7_1_3"
    assert decode(body) == {b"result": b"pong"}


def test_cookie_cache_returns_the_reply_until_it_expires() -> None:
    cache = ReplyCache(ttl=30.0, max_entries=3)
    cache.put(b"a", b"a reply", now=100.0)
    assert cache.get(b"a", now=129.9) == b"a reply"
    assert cache.get(b"a", now=130.0) is None
    assert cache.hits == 1


def test_cookie_cache_is_bounded_oldest_first() -> None:
    cache = ReplyCache(ttl=30.0, max_entries=3)
    for n in range(5):
        cache.put(b"c%d" % n, b"r%d" % n, now=float(n))
    assert len(cache) == 3
    assert cache.get(b"c0", now=5.0) is None
    assert cache.get(b"c1", now=5.0) is None
    assert cache.get(b"c4", now=5.0) == b"r4"
    with pytest.raises(ValueError):
        ReplyCache(ttl=0)
