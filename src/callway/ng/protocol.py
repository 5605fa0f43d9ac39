"""The rtpengine "ng" control protocol: datagrams, requests and replies.

A control datagram is ``<cookie> <bencoded dictionary>``: the cookie is any
run of bytes without a space, chosen by the client (Kamailio's rtpengine
module sends ``<n>_<pid>_<seq>``), and the reply is the same cookie, one
space and a bencoded dictionary.  The request's ``"command"`` names the
operation (``ping``, ``offer``, ``answer``, ``delete``, ``query``, ``list``,
...); every reply carries ``"result"``: ``"pong"`` for a ping, ``"ok"``, or
``"error"`` with an ``"error-reason"`` text.  A client retransmits a
request with the same cookie when no reply came, so the server must not
execute it twice (:mod:`callway.ng.cache`).

:class:`Request` is the typed view of one request dictionary: the common
keys Kamailio sends are parsed (``call-id``, ``from-tag``, ``to-tag``,
``sdp``, ``flags``, ``replace``, ``direction``, ``ICE``, ``received-from``
...); unknown keys stay available in ``raw`` and are otherwise ignored, as
rtpengine does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callway.ng.bencode import Bencodable, BencodeError, BValue, decode, encode, text

__all__ = [
    "NgError",
    "NgFrameError",
    "Reply",
    "Request",
    "error_reply",
    "format_reply",
    "parse_datagram",
    "parse_request",
    "split_cookie",
]

Reply = dict[str, Bencodable]


class NgFrameError(ValueError):
    """A datagram without a cookie: nothing can be answered, drop it."""


class NgError(Exception):
    """A request that cannot be carried out; ``reason`` goes to the reply's ``error-reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split_cookie(datagram: bytes) -> tuple[bytes, bytes]:
    """``(cookie, payload)``; :class:`NgFrameError` without a space or with an empty cookie."""
    cookie, space, payload = bytes(datagram).partition(b" ")
    if not space or not cookie:
        raise NgFrameError("no '<cookie> ' prefix")
    return cookie, payload


def parse_datagram(datagram: bytes) -> tuple[bytes, Request]:
    """The cookie and the request of one control datagram.

    :class:`NgFrameError` when there is no cookie (no reply possible);
    :class:`NgError` when the payload is not a request dictionary (the
    reply, under the cookie, says why).
    """
    cookie, payload = split_cookie(datagram)
    return cookie, parse_request(payload)


def parse_request(payload: bytes) -> Request:
    """The request a bencoded dictionary holds; :class:`NgError` when it holds none."""
    try:
        value = decode(payload)
    except BencodeError as exc:
        raise NgError(f"Failed to decode dictionary: {exc}") from None
    if not isinstance(value, dict):
        raise NgError("Failed to decode dictionary: not a dictionary")
    return Request.from_dict(value)


def format_reply(cookie: bytes, reply: Reply) -> bytes:
    """``<cookie> <bencoded reply>``."""
    return cookie + b" " + encode(reply)


def error_reply(reason: str) -> Reply:
    """``{"result": "error", "error-reason": reason}``."""
    return {"result": "error", "error-reason": reason}


def _text_of(value: BValue | None) -> str | None:
    if isinstance(value, bytes):
        return text(value)
    if isinstance(value, int):
        return str(value)
    return None


def _texts(value: BValue | None) -> tuple[str, ...]:
    """A list of strings (a lone string counts as a one-item list; others are skipped)."""
    if isinstance(value, list):
        return tuple(t for t in (_text_of(item) for item in value) if t is not None)
    single = _text_of(value)
    return (single,) if single is not None else ()


@dataclass(frozen=True, slots=True)
class Request:
    """One ng request (rtpengine's ``ng_control_protocol``), typed where callway reads it.

    ``flags`` are lower-cased and with ``_`` read as ``-`` (rtpengine
    accepts both spellings); ``ice`` is the ``ICE`` option lower-cased.
    """

    command: str
    call_id: str | None = None
    from_tag: str | None = None
    to_tag: str | None = None
    sdp: bytes | None = None
    flags: frozenset[str] = frozenset()
    replace: frozenset[str] = frozenset()
    direction: tuple[str, ...] = ()
    ice: str | None = None
    received_from: tuple[str, str] | None = None
    media_address: str | None = None
    transport_protocol: str | None = None
    delete_delay: float | None = None
    limit: int | None = None
    raw: dict[bytes, BValue] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, raw: dict[bytes, BValue]) -> Request:
        """Read the request's keys; :class:`NgError` without a ``command`` string."""
        command = _text_of(raw.get(b"command"))
        if not command or isinstance(raw.get(b"command"), int):
            raise NgError("No command given")
        sdp = raw.get(b"sdp")
        if sdp is not None and not isinstance(sdp, bytes):
            raise NgError("Invalid SDP: not a string")
        return cls(
            command=command.lower(),
            call_id=_text_of(raw.get(b"call-id")),
            from_tag=_text_of(raw.get(b"from-tag")),
            to_tag=_text_of(raw.get(b"to-tag")) or None,
            sdp=sdp,
            flags=frozenset(_normal(f) for f in _texts(raw.get(b"flags"))),
            replace=frozenset(_normal(r) for r in _texts(raw.get(b"replace"))),
            direction=_texts(raw.get(b"direction")),
            ice=(_text_of(raw.get(b"ICE")) or "").lower() or None,
            received_from=_address(raw.get(b"received-from")),
            media_address=_text_of(raw.get(b"media-address")) or None,
            transport_protocol=_text_of(raw.get(b"transport-protocol")) or None,
            delete_delay=_number(raw.get(b"delete-delay", raw.get(b"delete delay"))),
            limit=_integer(raw.get(b"limit")),
            raw=raw,
        )

    def need_call_id(self) -> str:
        """The ``call-id``; :class:`NgError` when it is missing."""
        if not self.call_id:
            raise NgError("No call-id in message")
        return self.call_id

    def need_from_tag(self) -> str:
        """The ``from-tag``; :class:`NgError` when it is missing."""
        if not self.from_tag:
            raise NgError("No from-tag in message")
        return self.from_tag

    def need_sdp(self) -> bytes:
        """The ``sdp``; :class:`NgError` when it is missing."""
        if not self.sdp:
            raise NgError("No SDP body in message")
        return self.sdp


def _normal(flag: str) -> str:
    return flag.strip().lower().replace("_", "-")


def _address(value: BValue | None) -> tuple[str, str] | None:
    """``received-from``: ``[family, address]`` (``["IP4", "192.0.2.1"]``)."""
    parts = _texts(value)
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _number(value: BValue | None) -> float | None:
    """An integer, or a string holding a number; None otherwise."""
    if isinstance(value, int):
        return float(value)
    if isinstance(value, bytes):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def _integer(value: BValue | None) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None
