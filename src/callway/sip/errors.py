"""Errors of the SIP layer.

Like h11's ``RemoteProtocolError``, a parse error carries the status code a
server should answer with (``status_hint``), so the transport shell can reply
400/505/... without knowing why the message was bad (RFC 3261 §8.2, RFC 4475 §3).
"""

from __future__ import annotations

from collections.abc import Iterable


class SipError(Exception):
    """Base class of every error raised by :mod:`callway.sip`."""


class ParseError(SipError):
    """The peer sent bytes that are not a valid SIP message.

    ``status_hint`` is the response a server should send (400 unless a more
    specific code applies, e.g. 505 for an unknown SIP version), or ``None``
    when the message must be dropped silently (e.g. a malformed response).

    ``headers`` are header fields the error response must carry, e.g.
    ``Unsupported`` with a 420 (RFC 3261 §8.2.2.3) or ``Accept`` with a 415
    (RFC 3261 §8.2.3).
    """

    def __init__(
        self,
        reason: str,
        status_hint: int | None = 400,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)
