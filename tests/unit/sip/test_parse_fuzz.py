"""Property tests: nothing but ParseError escapes the message layer.

Arbitrary bytes and mutated RFC 4475 / RFC 5118 messages are fed to
``parse_message``, every structured accessor, ``validate_request`` /
``validate_response`` and the serializer.  A crash of any other type is a bug
in the parser (a peer must never be able to raise e.g. ValueError in a server).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callway.sip.errors import ParseError
from callway.sip.framing import FramedMessage, FramingError, StreamFramer
from callway.sip.message import Message, Request, Response, make_response, parse_message
from callway.sip.validate import accepts, validate_request, validate_response


def _testdata_dir() -> Path:
    """``shared/testdata`` beside the repository (walk up from this file)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/testdata not found beside the repository")


def _corpus() -> list[bytes]:
    root = _testdata_dir()
    files = sorted((root / "rfc4475").glob("*.dat")) + sorted(
        p for p in (root / "rfc5118").iterdir() if p.name != "SOURCES.md"
    )
    return [p.read_bytes() for p in files]


CORPUS = _corpus()
FUZZ = settings(
    max_examples=int(os.environ.get("CALLWAY_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(ParseError):
        call()


def _touch_accessors(message: Message) -> None:
    for name in (
        "vias", "via", "from_", "to", "cseq", "call_id", "contacts", "contact_star",
        "max_forwards", "expires", "content_type",
    ):  # fmt: skip
        _swallow(lambda name=name: getattr(message, name))
    _swallow(lambda: [str(v) for v in message.vias])
    _swallow(lambda: str(message.from_))
    _swallow(lambda: [str(c) for c in message.contacts])
    for header in ("route", "record-route", "require", "warning", "accept"):
        _swallow(lambda header=header: message.get_all(header))
    _swallow(lambda: accepts(message, "application/sdp"))


def _exercise(data: bytes) -> None:
    for stream in (False, True):
        try:
            message = parse_message(data, stream=stream)
        except ParseError as exc:
            assert exc.status_hint in (None, 400, 505)
            continue
        _exercise_message(message, stream)


def _exercise_message(message: Message, stream: bool) -> None:
    _touch_accessors(message)
    if isinstance(message, Request):
        _exercise_request(message)
    else:
        assert isinstance(message, Response)
        for forwarding in (False, True):
            _swallow(lambda f=forwarding: validate_response(message, forwarding=f))
    _swallow(lambda: parse_message(message.serialize(), stream=stream))
    assert message.to_bytes()
    # A proxy adds its Via to whatever parsed: the spliced bytes must parse again.
    count = len(message.headers)
    message.prepend("Via", "SIP/2.0/UDP 192.0.2.254;branch=z9hG4bKfuzz")
    again = parse_message(message.to_bytes(), stream=stream)
    assert len(again.headers) == count + 1
    assert again.get("via") == "SIP/2.0/UDP 192.0.2.254;branch=z9hG4bKfuzz"


def _exercise_request(request: Request) -> None:
    _swallow(lambda: request.uri)
    _swallow(lambda: request.sip_uri)
    for forwarding in (False, True):
        _swallow(
            lambda f=forwarding: validate_request(
                request, supported=("100rel",), accept=("application/sdp",), forwarding=f
            )
        )
    _swallow(lambda: make_response(request, 200, to_tag="abc").to_bytes())


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    _exercise(data)


_SIP_ALPHABET = b'\r\n \t:;,<>"\\@=?&%[]/.0123456789SIPsipVvTtfFmMlLaz~*!\x00\xff\xd0'


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [b"\r\n", b": ", b";", b",", b"<", b">", b'"', b"\\", b" ", b"\t", b"SIP/2.0"]
        )
        | st.binary(max_size=8),
        max_size=40,
    )
)
def test_sip_like_bytes_raise_only_parse_error(parts: list[bytes]) -> None:
    _exercise(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n" + b"".join(parts) + b"\r\n\r\n")


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate"]))
        if kind == "flip" and data:
            data[pos] = draw(st.sampled_from(_SIP_ALPHABET))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"\r\n", b"\r\n ", b";", b",", b"<", b'"', b"[", b":", b"%", b"\r\n\r\n"]
            ))  # fmt: skip
        elif kind == "duplicate":
            end = min(len(data), pos + draw(st.integers(1, 80)))
            data[pos:pos] = data[pos:end]
        else:
            del data[pos:]
    return bytes(data)


@FUZZ
@given(_mutated())
def test_mutated_rfc_messages_raise_only_parse_error(data: bytes) -> None:
    _exercise(data)


@FUZZ
@given(st.sampled_from(CORPUS), st.lists(st.integers(1, 64), max_size=12))
def test_framer_never_raises(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer()
    stream = data + b"\r\n\r\n" + data
    pos = 0
    for size in [*cuts, len(stream)]:
        framer.receive_data(stream[pos : pos + size])
        pos += size
        while (event := framer.next_event()) is not None:
            if isinstance(event, FramedMessage):
                _exercise(event.data)
            elif isinstance(event, FramingError):
                break
