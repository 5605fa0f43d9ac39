"""Bencode, the encoding of rtpengine's "ng" control protocol (BitTorrent BEP 3).

Four kinds of value: byte strings ``<length>:<bytes>``, integers
``i<decimal>e``, lists ``l<values>e`` and dictionaries ``d<key><value>...e``
whose keys are byte strings.  :func:`decode` returns ``bytes``, ``int``,
``list`` and ``dict[bytes, ...]``; :func:`encode` also takes ``str`` (UTF-8,
lone surrogates from :func:`text` written back as the bytes they came from)
and writes dictionary keys sorted, as BEP 3 asks.

Decoding is strict where a guess would be wrong (lengths and integers must
be plain decimals, nothing may follow the value, keys must be strings) and
bounded: nesting deeper than :data:`MAX_DEPTH` is refused instead of
recursing without limit.  Every defect raises :class:`BencodeError`.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["MAX_DEPTH", "BValue", "Bencodable", "BencodeError", "decode", "encode", "text"]

MAX_DEPTH = 32

# What decode returns, and what encode accepts (str as UTF-8, bool refused).
BValue: TypeAlias = int | bytes | list["BValue"] | dict[bytes, "BValue"]
Bencodable: TypeAlias = (
    int | bytes | str | list["Bencodable"] | tuple["Bencodable", ...] | dict[str, "Bencodable"]
)

_DIGITS = frozenset(b"0123456789")


class BencodeError(ValueError):
    """Bytes that are not one well-formed bencoded value (BEP 3); ``offset`` is where."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"offset {offset}: {reason}")
        self.reason = reason
        self.offset = offset


def text(value: bytes) -> str:
    """A bencoded string as text: UTF-8, undecodable bytes kept as surrogates."""
    return value.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------
def encode(value: Bencodable) -> bytes:
    """The bencoding of ``value`` (dictionary keys sorted by their bytes, BEP 3)."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Bencodable, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, str):  # the commonest first
        data = value.encode("utf-8", "surrogateescape")
        out += (b"%d:" % len(data), data)
    elif isinstance(value, bytes):
        out += (b"%d:" % len(value), value)
    elif isinstance(value, bool):
        raise TypeError("bencode has no booleans: use 0 or 1")
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, dict):
        out.append(b"d")
        pairs = [(_as_bytes(key), item) for key, item in value.items()]
        pairs.sort(key=_first)
        for key, item in pairs:
            out += (b"%d:" % len(key), key)
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def _first(pair: tuple[bytes, Bencodable]) -> bytes:
    return pair[0]


def _as_bytes(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes):
        return value
    raise TypeError(f"dictionary key must be str or bytes, not {type(value).__name__}")


# --------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------
def decode(data: bytes) -> BValue:
    """The one value ``data`` holds; :class:`BencodeError` if it is not exactly one."""
    data = bytes(data)
    value, end = _Decoder(data).value(0, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} bytes after the value", end)
    return value


class _Decoder:
    """Recursive descent over one buffer; each step returns (value, next offset)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def value(self, pos: int, depth: int) -> tuple[BValue, int]:
        if pos >= len(self.data):
            raise BencodeError("truncated: a value was expected", pos)
        lead = self.data[pos]
        if lead in _DIGITS:
            return self.string(pos)
        if depth >= MAX_DEPTH and lead in b"ld":
            raise BencodeError(f"nesting deeper than {MAX_DEPTH}", pos)
        if lead == ord("i"):
            return self.integer(pos)
        if lead == ord("l"):
            return self.list(pos, depth)
        if lead == ord("d"):
            return self.dict(pos, depth)
        raise BencodeError(f"unexpected byte {bytes([lead])!r}", pos)

    def integer(self, pos: int) -> tuple[int, int]:
        end = self.data.find(b"e", pos + 1)
        if end < 0:
            raise BencodeError("integer without its closing 'e'", pos)
        digits = self.data[pos + 1 : end]
        body = digits[1:] if digits.startswith(b"-") else digits
        if not body or not all(byte in _DIGITS for byte in body):
            raise BencodeError(f"bad integer {digits[:20]!r}", pos)
        if (body.startswith(b"0") and len(body) > 1) or digits == b"-0":
            raise BencodeError(f"integer with a leading zero {digits[:20]!r}", pos)
        return int(digits), end + 1

    def string(self, pos: int) -> tuple[bytes, int]:
        colon = self.data.find(b":", pos)
        if colon < 0:
            raise BencodeError("string length without its ':'", pos)
        digits = self.data[pos:colon]
        if not all(byte in _DIGITS for byte in digits) or (
            digits.startswith(b"0") and len(digits) > 1
        ):
            raise BencodeError(f"bad string length {digits[:20]!r}", pos)
        start = colon + 1
        end = start + int(digits)
        if end > len(self.data):
            raise BencodeError(f"string of {int(digits)} bytes runs past the end", pos)
        return self.data[start:end], end

    def list(self, pos: int, depth: int) -> tuple[list[BValue], int]:
        items: list[BValue] = []
        pos += 1
        while True:
            if pos >= len(self.data):
                raise BencodeError("list without its closing 'e'", pos)
            if self.data[pos] == ord("e"):
                return items, pos + 1
            item, pos = self.value(pos, depth + 1)
            items.append(item)

    def dict(self, pos: int, depth: int) -> tuple[dict[bytes, BValue], int]:
        items: dict[bytes, BValue] = {}
        pos += 1
        while True:
            if pos >= len(self.data):
                raise BencodeError("dictionary without its closing 'e'", pos)
            if self.data[pos] == ord("e"):
                return items, pos + 1
            if self.data[pos] not in _DIGITS:
                raise BencodeError("dictionary key is not a string", pos)
            key, pos = self.string(pos)
            if key in items:
                raise BencodeError(f"duplicate key {key[:40]!r}", pos)
            items[key], pos = self.value(pos, depth + 1)
