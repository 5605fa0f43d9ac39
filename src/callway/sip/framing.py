"""Message framing over stream transports (RFC 3261 §18.3, RFC 5626 §3.5.1).

On TCP/TLS the header block ends at the first CRLFCRLF and Content-Length
(mandatory on streams) says where the body ends.  A double CRLF between
messages is an RFC 5626 keep-alive "ping" that is answered with a single CRLF
"pong"; a lone CRLF is ignored.

:class:`StreamFramer` is sans-I/O: feed bytes with :meth:`receive_data`,
pull events with :meth:`next_event`.
"""

from __future__ import annotations

from dataclasses import dataclass

from callway.sip.errors import ParseError

DEFAULT_MAX_MESSAGE = 65536


@dataclass(frozen=True, slots=True)
class FramedMessage:
    """One complete message's bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """The peer sent CRLFCRLF: answer with CRLF (RFC 5626 §3.5.1)."""


@dataclass(frozen=True, slots=True)
class FramingError:
    """The stream is broken beyond repair: answer ``status_hint`` if any, then close."""

    reason: str
    status_hint: int | None


FramerEvent = FramedMessage | KeepAlivePing | FramingError


class StreamFramer:
    """Split a byte stream into SIP messages by Content-Length."""

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max = max_message
        self._broken = False

    @property
    def buffered(self) -> int:
        """How many bytes wait for the rest of their message."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Append bytes received from the stream."""
        if not self._broken:
            self._buffer += data

    def next_event(self) -> FramerEvent | None:
        """The next complete event, or None if more data is needed."""
        if self._broken:
            return None
        buf = self._buffer
        if buf.startswith(b"\r\n"):
            if buf.startswith(b"\r\n\r\n"):
                del buf[:4]
                return KeepAlivePing()
            if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                return None
            del buf[:2]
            return self.next_event()
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self._max:
                return self._fail("header block too large", 513)
            return None
        try:
            length = _content_length(bytes(buf[:end]))
        except ParseError as exc:
            return self._fail(exc.reason, exc.status_hint)
        total = end + 4 + length
        if total > self._max:
            return self._fail("message too large", 513)
        if len(buf) < total:
            return None
        data = bytes(buf[:total])
        del buf[:total]
        return FramedMessage(data)

    def _fail(self, reason: str, status: int | None) -> FramingError:
        self._broken = True
        self._buffer.clear()
        return FramingError(reason, status)


def _content_length(head: bytes) -> int:
    """Find Content-Length (or its compact form ``l``) in a header block."""
    found: int | None = None
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.strip().lower()
        if key in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit() or len(text) > 10:
                raise ParseError(f"bad Content-Length {text!r}")
            if found is not None and found != int(text):
                raise ParseError("conflicting Content-Length headers")
            found = int(text)
    if found is None:
        raise ParseError("missing Content-Length on a stream transport")
    return found
