"""Stream framing by Content-Length and RFC 5626 keep-alives (RFC 3261 §18.3, RFC 5626 §3.5.1)."""

from __future__ import annotations

import pytest

from callway.sip.framing import (
    FramedMessage,
    FramerEvent,
    FramingError,
    KeepAlivePing,
    StreamFramer,
)
from callway.sip.message import Request, parse_message

BODY = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
MESSAGE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"Call-ID: abc\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"\r\n" + BODY
)
NO_BODY = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK2\r\n"
    b"l: 0\r\n"
    b"\r\n"
)


def drain(framer: StreamFramer) -> list[FramerEvent]:
    events: list[FramerEvent] = []
    while (event := framer.next_event()) is not None:
        events.append(event)
    return events


def feed(chunks: list[bytes]) -> list[FramerEvent]:
    framer = StreamFramer()
    events: list[FramerEvent] = []
    for chunk in chunks:
        framer.receive_data(chunk)
        events += drain(framer)
    return events


def test_one_message() -> None:
    assert feed([MESSAGE]) == [FramedMessage(MESSAGE)]


def test_framed_bytes_parse_as_a_stream_message() -> None:
    (event,) = feed([MESSAGE])
    assert isinstance(event, FramedMessage)
    message = parse_message(event.data, stream=True)
    assert isinstance(message, Request) and message.body == BODY


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    events: list[FramerEvent] = []
    for i in range(len(MESSAGE)):
        framer.receive_data(MESSAGE[i : i + 1])
        events += drain(framer)
        if i < len(MESSAGE) - 1:
            assert events == []
    assert events == [FramedMessage(MESSAGE)]
    assert framer.buffered == 0


@pytest.mark.parametrize("cut", [1, 10, MESSAGE.index(b"\r\n\r\n") + 2, len(MESSAGE) - 1])
def test_split_across_two_chunks(cut: int) -> None:
    assert feed([MESSAGE[:cut], MESSAGE[cut:]]) == [FramedMessage(MESSAGE)]


def test_concatenated_messages_in_one_chunk() -> None:
    events = feed([MESSAGE + NO_BODY + MESSAGE])
    assert events == [FramedMessage(MESSAGE), FramedMessage(NO_BODY), FramedMessage(MESSAGE)]


def test_partial_second_message_waits() -> None:
    framer = StreamFramer()
    framer.receive_data(MESSAGE + NO_BODY[:20])
    assert drain(framer) == [FramedMessage(MESSAGE)]
    assert framer.buffered == 20
    framer.receive_data(NO_BODY[20:])
    assert drain(framer) == [FramedMessage(NO_BODY)]


def test_double_crlf_is_a_ping() -> None:
    assert feed([b"\r\n\r\n"]) == [KeepAlivePing()]
    assert feed([b"\r\n\r\n\r\n\r\n" + NO_BODY]) == [
        KeepAlivePing(),
        KeepAlivePing(),
        FramedMessage(NO_BODY),
    ]


def test_ping_split_across_chunks() -> None:
    assert feed([b"\r\n", b"\r", b"\n"]) == [KeepAlivePing()]


def test_lone_crlf_is_ignored() -> None:
    assert feed([b"\r\n" + NO_BODY]) == [FramedMessage(NO_BODY)]
    assert feed([NO_BODY + b"\r\n" + NO_BODY]) == [FramedMessage(NO_BODY)] * 2


def test_pending_crlf_waits_for_more() -> None:
    framer = StreamFramer()
    framer.receive_data(b"\r\n")
    assert framer.next_event() is None
    framer.receive_data(b"\r\n")
    assert framer.next_event() == KeepAlivePing()


def test_compact_and_spaced_content_length() -> None:
    data = b"MESSAGE sip:a@b SIP/2.0\r\nl :  2\r\n\r\nhi"
    assert feed([data]) == [FramedMessage(data)]


@pytest.mark.parametrize(
    "head",
    [
        b"MESSAGE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",  # no Content-Length on a stream
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n",
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: five\r\n\r\n",
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n",
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n",  # RFC 4475 §3.3.9
    ],
)
def test_content_length_errors_break_the_stream(head: bytes) -> None:
    framer = StreamFramer()
    framer.receive_data(head + b"hello" + NO_BODY)
    (event,) = drain(framer)
    assert isinstance(event, FramingError) and event.status_hint == 400
    assert framer.buffered == 0
    framer.receive_data(NO_BODY)
    assert framer.next_event() is None  # a broken stream yields nothing more


def test_message_too_large() -> None:
    framer = StreamFramer(max_message=100)
    framer.receive_data(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 500\r\n\r\n")
    (event,) = drain(framer)
    assert isinstance(event, FramingError) and event.status_hint == 513


def test_header_block_too_large() -> None:
    framer = StreamFramer(max_message=64)
    framer.receive_data(b"MESSAGE sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"x" * 100)
    (event,) = drain(framer)
    assert isinstance(event, FramingError) and event.status_hint == 513


def test_equal_repeated_content_length_is_fine() -> None:
    data = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 2\r\n\r\nok"
    assert feed([data]) == [FramedMessage(data)]
