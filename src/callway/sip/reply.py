"""Answering messages that did not parse (RFC 3261 §8.2, RFC 4475 §3.1.2).

When :func:`~callway.sip.message.parse_message` rejects a request, the
transport still owes the sender a response if one can be addressed: the
Via, From, To, Call-ID and CSeq lines are copied textually (RFC 3261
§8.2.6.2) from whatever header lines can be recognised.  Responses and
requests without a Via get nothing.
"""

from __future__ import annotations

from callway.sip.headers import canonical_name, header_key
from callway.sip.status import reason_phrase

_COPIED = ("via", "from", "to", "call-id", "cseq")


def error_response(data: bytes, status: int, detail: str = "") -> bytes | None:
    """Bytes of a ``status`` response to the unparseable request ``data``, or None."""
    head = data.split(b"\r\n\r\n", 1)[0].lstrip(b"\r\n")
    text = head.decode("utf-8", "replace")
    lines = text.split("\r\n")
    if not lines or lines[0].startswith("SIP/") or " " not in lines[0]:
        return None
    copied: list[str] = []
    for line in _unfold(lines[1:]):
        name, colon, value = line.partition(":")
        if not colon:
            continue
        key = header_key(name)
        if key in _COPIED:
            copied.append(f"{canonical_name(key)}: {value.strip()}")
    if not any(line.startswith("Via:") for line in copied):
        return None
    reason = reason_phrase(status)
    out = [f"SIP/2.0 {status} {reason}", *copied]
    if detail:
        safe = "".join(ch if 32 <= ord(ch) < 127 and ch != '"' else "?" for ch in detail[:100])
        out.append(f'Warning: 399 callway "{safe}"')
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8", "replace")


def _unfold(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out
