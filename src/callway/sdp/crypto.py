"""SDES keys for SRTP: the ``a=crypto`` attribute (RFC 4568).

``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568
§9.1), where each key parameter is ``inline:<key||salt base64>[|<lifetime>]
[|<MKI>:<length>]`` (§6.1) and several key parameters are separated by
``;``.  callway speaks the two suites every SDES phone has, RFC 4568 §6.2.1
``AES_CM_128_HMAC_SHA1_80`` and ``AES_CM_128_HMAC_SHA1_32`` (a 128-bit
master key and a 112-bit master salt, RFC 3711 §8.2), with one key, no
MKI and no session parameters; those are what it offers and what it accepts
in an offer (§7.1.1: the answerer picks one attribute it supports and answers
with the same tag and suite and its own key).

Keys are secrets: :class:`KeyParams` hides them from ``repr`` (so a logged
attribute shows ``inline:<hidden>``); only ``str()`` writes them, for the SDP
body itself.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from callway.sdp.errors import SdpError

__all__ = [
    "DEFAULT_SUITES",
    "SUITES",
    "CryptoAttribute",
    "KeyParams",
    "Suite",
    "choose_crypto",
    "offer_cryptos",
]


@dataclass(frozen=True, slots=True)
class Suite:
    """An SRTP crypto suite (RFC 4568 §6.2): key and salt sizes, auth tag length."""

    name: str
    key_length: int  # master key, bytes
    salt_length: int  # master salt, bytes
    tag_length: int  # RTP auth tag, bytes (SRTCP always uses 80 bits, RFC 4568 §6.2.1)

    @property
    def key_salt_length(self) -> int:
        """Bytes of the concatenated master key and salt (the ``inline:`` value)."""
        return self.key_length + self.salt_length


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite("AES_CM_128_HMAC_SHA1_80", 16, 14, 10),
        Suite("AES_CM_128_HMAC_SHA1_32", 16, 14, 4),
    )
}
DEFAULT_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")


@dataclass(frozen=True, slots=True)
class KeyParams:
    """One ``inline:`` key parameter (RFC 4568 §6.1); ``repr`` hides the key."""

    key_salt: bytes = field(repr=False)
    lifetime: int | None = None  # packets (``2^31`` is written as a power of two)
    mki: tuple[int, int] | None = None  # (value, length in bytes)
    lifetime_text: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> KeyParams:
        """Parse ``inline:<base64>[|lifetime][|MKI:length]``."""
        method, _, info = text.partition(":")
        if method.lower() != "inline" or not info:
            raise SdpError("crypto key method is not inline")
        fields = info.split("|")
        try:
            key_salt = base64.b64decode(fields[0], validate=True)
        except (binascii.Error, ValueError):
            raise SdpError("crypto key is not base64") from None
        lifetime: int | None = None
        lifetime_text: str | None = None
        mki: tuple[int, int] | None = None
        for extra in fields[1:]:
            if ":" in extra:
                if mki is not None:
                    raise SdpError("crypto key has two MKI fields")
                mki = _mki(extra)
            elif lifetime is None and mki is None:
                lifetime, lifetime_text = _lifetime(extra), extra
            else:
                raise SdpError("crypto key has a misplaced lifetime")
        return cls(key_salt, lifetime, mki, lifetime_text)

    def __str__(self) -> str:
        text = "inline:" + base64.b64encode(self.key_salt).decode("ascii")
        if self.lifetime is not None:
            text += "|" + (self.lifetime_text or _format_lifetime(self.lifetime))
        if self.mki is not None:
            text += f"|{self.mki[0]}:{self.mki[1]}"
        return text


def _lifetime(text: str) -> int:
    try:
        if text.startswith("2^"):
            exponent = int(text[2:])
            if not 0 <= exponent <= 64:  # a peer's "2^99999999999999" must not allocate
                raise SdpError("bad crypto key lifetime")
            return 1 << exponent
        value = int(text)
    except ValueError:
        raise SdpError("bad crypto key lifetime") from None
    if value <= 0:
        raise SdpError("bad crypto key lifetime")
    return value


def _format_lifetime(value: int) -> str:
    if value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    return str(value)


def _mki(text: str) -> tuple[int, int]:
    value, _, length = text.partition(":")
    try:
        mki = (int(value), int(length))
    except ValueError:
        raise SdpError("bad crypto MKI") from None
    if not 1 <= mki[1] <= 128 or mki[0] < 0 or mki[0] >= 1 << (8 * mki[1]):
        raise SdpError("bad crypto MKI")
    return mki


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """One ``a=crypto`` value (RFC 4568 §9.1); ``str()`` is the SDP text."""

    tag: int
    suite: str
    keys: tuple[KeyParams, ...]
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the attribute value (what follows ``a=crypto:``)."""
        parts = value.split()
        if len(parts) < 3:
            raise SdpError("crypto attribute needs a tag, a suite and keys")
        tag_text, suite, key_text, *session = parts
        # RFC 4568 §9.1: 1*9DIGIT (ASCII: str.isdigit() also takes e.g. "\u00b2")
        if not (tag_text.isascii() and tag_text.isdigit()) or len(tag_text) > 9:
            raise SdpError("bad crypto tag")
        keys = tuple(KeyParams.parse(key) for key in key_text.split(";"))
        return cls(int(tag_text), suite, keys, tuple(session))

    @classmethod
    def generate(cls, tag: int, suite: str) -> CryptoAttribute:
        """A fresh random master key and salt for ``suite`` (RFC 4568 §6.1, §8.1)."""
        spec = SUITES.get(suite)
        if spec is None:
            raise ValueError(f"unsupported crypto suite {suite!r}")
        return cls(tag, suite, (KeyParams(secrets.token_bytes(spec.key_salt_length)),))

    @property
    def key_salt(self) -> bytes:
        """The (first) master key and salt, concatenated."""
        return self.keys[0].key_salt

    def usable(self) -> bool:
        """Whether callway can run SRTP with this attribute (RFC 4568 §7.1.1).

        A known suite, one key of the suite's size without MKI, and no session
        parameter (an answerer must not accept parameters it does not
        implement, §6.3).
        """
        spec = SUITES.get(self.suite)
        return (
            spec is not None
            and len(self.keys) == 1
            and self.keys[0].mki is None
            and len(self.keys[0].key_salt) == spec.key_salt_length
            and not self.session_params
        )

    def answered_with(self, answer: CryptoAttribute) -> bool:
        """Whether ``answer`` accepts this offered attribute (same tag and suite, §7.1.2)."""
        return answer.tag == self.tag and answer.suite == self.suite

    def __str__(self) -> str:
        text = f"{self.tag} {self.suite} " + ";".join(str(key) for key in self.keys)
        return " ".join((text, *self.session_params))

    def __repr__(self) -> str:
        keys = ";".join("inline:<hidden>" for _ in self.keys)
        return f"CryptoAttribute({self.tag} {self.suite} {keys})"


def offer_cryptos(suites: Sequence[str] = DEFAULT_SUITES) -> list[CryptoAttribute]:
    """Fresh attributes for an offer, tags 1, 2, ... in preference order (§7.1.1)."""
    return [CryptoAttribute.generate(tag, suite) for tag, suite in enumerate(suites, 1)]


def choose_crypto(
    values: Iterable[str], suites: Sequence[str] = DEFAULT_SUITES
) -> CryptoAttribute | None:
    """The first offered attribute callway can use, in the offer's order (§7.1.1).

    Attributes that do not parse are skipped like unknown suites: an offer may
    list alternatives callway does not understand.
    """
    for value in values:
        try:
            crypto = CryptoAttribute.parse(value)
        except SdpError:
            continue
        if crypto.suite in suites and crypto.usable():
            return crypto
    return None
