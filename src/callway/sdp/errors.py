"""Errors of the SDP layer."""

from __future__ import annotations


class SdpError(ValueError):
    """Text that is not a valid session description (RFC 8866 §5).

    ``line`` is the 1-based line number when the error is tied to one line.
    A server answering an INVITE with a bad body replies 400 (RFC 3261 §21.4.1);
    an unusable but valid offer gets 488 instead (RFC 3261 §21.4.26).
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.reason = reason
        self.line = line
