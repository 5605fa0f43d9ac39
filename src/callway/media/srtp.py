"""SRTP and SRTCP for one relay leg (RFC 3711), on libsrtp through pylibsrtp.

A leg that negotiated SDES keys (RFC 4568) has two libsrtp sessions: the
inbound one holds the phone's master key (what it announced in its
``a=crypto``) and unprotects what the phone sends; the outbound one holds
callway's key and protects what the relay sends to the phone.  Each session
covers RTP and RTCP (SRTCP is mandatory, RFC 3711 §3.4) for any SSRC
(``ssrc_any_inbound`` / ``ssrc_any_outbound``), so a phone that changes its
SSRC, or two sources relayed to one leg, need no new keys.

The relay applies these per packet, so :class:`SrtpCipher` calls libsrtp
through pylibsrtp's cffi binding with a buffer and length cell allocated once
per process (``pylibsrtp.Session.protect`` allocates per call).  The bytes
steps (:func:`_step`: one copy in, one C call, one copy out) serve RTCP,
prompts and transcoded directions; an RTP direction whose only steps are SRTP
runs in place (:func:`_step_into`): the relay receives the datagram straight
into the buffer (:func:`scratch_view`), libsrtp transforms it there and the
relay sends a slice of it.  Warm, a step costs about 1 us; in the relay,
where each packet arrives after the loop idled and finds the caches cold,
libsrtp's call alone takes about 4 us (the whole in-place step: 5.5 us after
a 100 us sleep with one session, 7.4 us with 200 sessions in turn), so
libsrtp on OpenSSL 3, not Python, sets the floor of SRTP's cost.

Packets that fail authentication or the replay check (RFC 3711 §3.3.2) are
dropped and counted, never forwarded; so are packets that are not RTP
version 2.

RTCP multiplexed on the RTP port (RFC 5761 §4: second octet 192-223) goes
through the SRTCP transform.  An outbound protect never fails for a repeated
sequence number (``allow_repeat_tx``): the relay forwards what the other
phone sent, duplicates included.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import pylibsrtp

from callway.sdp.crypto import SUITES, CryptoAttribute

__all__ = [
    "BlockedLeg",
    "InPlace",
    "LegCrypto",
    "LegSrtp",
    "SrtpCipher",
    "scratch_view",
    "srtp_profile",
]

_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
_BUFFER = 2048 + 16 + 148  # largest relayed datagram plus the SRTCP trailer

try:  # the cffi binding behind pylibsrtp.Session: the fast path
    _binding: Any = importlib.import_module("pylibsrtp._binding")
except ImportError:  # pragma: no cover - a pylibsrtp without it: the public API
    _binding = None

Packet = bytes | bytearray
Step = Callable[[Packet], "bytes | None"]  # one packet through one cipher; None = drop
# One packet already in the scratch buffer (see scratch_view): its size -> the size
# after the transform, in the same buffer; -1 = drop.
InPlace = Callable[[int], int]


_SCRATCH: tuple[Any, Any, Any] | None = None


def _scratch(ffi: Any) -> tuple[Any, Any, Any]:
    """One packet buffer and length cell shared by every cipher of the process.

    libsrtp works in place; each call copies in, transforms and copies out
    before returning, on the one event-loop thread, so one buffer serves all
    calls (2 KB for the process instead of 2 KB per leg and direction).
    """
    global _SCRATCH
    if _SCRATCH is None:
        cdata = ffi.new("unsigned char[]", _BUFFER)
        _SCRATCH = (cdata, ffi.buffer(cdata), ffi.new("int *"))
    return _SCRATCH


def scratch_view() -> memoryview | None:
    """The shared packet buffer as a writable memoryview; None without the cffi binding.

    The relay receives an SRTP leg's datagram straight into it
    (``recvfrom_into``), runs the :data:`InPlace` steps on it and sends a
    slice of it: no bytes object and no copy per packet.  Whatever is in it
    is valid only until the next packet.
    """
    if _binding is None:  # pragma: no cover
        return None
    return _views()[0]


_VIEWS: tuple[memoryview, memoryview] | None = None


def _views() -> tuple[memoryview, memoryview]:
    """The scratch buffer and its length cell as memoryviews (indexing them is cheaper)."""
    global _VIEWS
    if _VIEWS is None:
        ffi = _binding.ffi
        _, buf, cell = _scratch(ffi)
        _VIEWS = (memoryview(buf), memoryview(ffi.buffer(cell)).cast("i"))
    return _VIEWS


def srtp_profile(suite: str) -> int:
    """The libsrtp profile for an RFC 4568 crypto suite name."""
    try:
        return int(_PROFILES[suite])
    except KeyError:
        raise ValueError(f"unsupported SRTP suite {suite!r}") from None


class SrtpCipher:
    """One direction of one leg: a libsrtp session that protects or unprotects.

    ``rtp(packet)`` and ``rtcp(packet)`` return the transformed packet, or
    None (counted in ``failures``) when libsrtp refuses it.
    """

    __slots__ = (
        "_buf",
        "_cdata",
        "_len",
        "_public_rtcp",
        "_public_rtp",
        "_rtcp",
        "_rtp",
        "_session",
        "_srtp",
        "failures",
        "not_rtp",
    )

    def __init__(self, suite: str, key_salt: bytes, *, outbound: bool) -> None:
        spec = SUITES.get(suite)
        if spec is None or len(key_salt) != spec.key_salt_length:
            raise ValueError("bad SRTP key or suite")
        policy = pylibsrtp.Policy(
            key=bytes(key_salt),
            ssrc_type=(
                pylibsrtp.Policy.SSRC_ANY_OUTBOUND
                if outbound
                else pylibsrtp.Policy.SSRC_ANY_INBOUND
            ),
            srtp_profile=srtp_profile(suite),
        )
        if outbound:
            policy.allow_repeat_tx = True
        self._session = pylibsrtp.Session(policy)
        self.failures = 0
        self.not_rtp = 0  # refused before libsrtp: too short or not RTP version 2
        self._rtp: Callable[[Any, Any, Any], int] | None = None
        self._rtcp: Callable[[Any, Any, Any], int] | None = None
        if _binding is not None and hasattr(self._session, "_srtp"):
            lib, ffi = _binding.lib, _binding.ffi
            self._srtp = self._session._srtp[0]
            self._cdata, self._buf, self._len = _scratch(ffi)
            if outbound:
                self._rtp, self._rtcp = lib.srtp_protect, lib.srtp_protect_rtcp
            else:
                self._rtp, self._rtcp = lib.srtp_unprotect, lib.srtp_unprotect_rtcp
        session = self._session
        self._public_rtp, self._public_rtcp = (
            (session.protect, session.protect_rtcp)
            if outbound
            else (session.unprotect, session.unprotect_rtcp)
        )

    def rtp(self, data: Packet) -> bytes | None:
        """Transform one RTP packet (RFC 3711 §3.3); None if refused."""
        func = self._rtp
        if func is None:  # pragma: no cover
            return self._public(self._public_rtp, data)
        size = len(data)
        if size > 2048:
            self.failures += 1
            return None
        self._buf[0:size] = data
        length = self._len
        length[0] = size
        if func(self._srtp, self._cdata, length):
            self.failures += 1
            return None
        return self._buf[0 : length[0]]  # type: ignore[no-any-return]

    def rtcp(self, data: Packet) -> bytes | None:
        """Transform one RTCP packet (SRTCP, RFC 3711 §3.4); None if refused."""
        func = self._rtcp
        if func is None:  # pragma: no cover
            return self._public(self._public_rtcp, data)
        size = len(data)
        if size > 2048:
            self.failures += 1
            return None
        self._buf[0:size] = data
        length = self._len
        length[0] = size
        if func(self._srtp, self._cdata, length):
            self.failures += 1
            return None
        return self._buf[0 : length[0]]  # type: ignore[no-any-return]

    def _public(self, func: Callable[[bytes], bytes], data: Packet) -> bytes | None:
        try:
            return func(bytes(data))
        except (pylibsrtp.Error, ValueError):
            self.failures += 1
            return None


class LegCrypto(Protocol):
    """What the relay applies on a leg with media encryption (per packet, None = drop)."""

    @property
    def suite(self) -> str:
        """The crypto suite in use (for stats)."""
        ...

    def unprotect(self, data: Packet) -> bytes | None:
        """From the phone's RTP port to plain."""
        ...

    def unprotect_rtcp(self, data: Packet) -> bytes | None:
        """From the phone's RTCP port to plain."""
        ...

    def protect(self, data: Packet) -> bytes | None:
        """Plain to the phone's RTP port."""
        ...

    def protect_rtcp(self, data: Packet) -> bytes | None:
        """Plain to the phone's RTCP port."""
        ...


class BlockedLeg:
    """A leg that must have SRTP but has no keys yet: nothing in, nothing out.

    An SRTP-mandatory phone never gets plain RTP (and its packets are never
    taken as plain) while the offer/answer that brings the keys is pending.
    """

    __slots__ = ()

    @property
    def suite(self) -> str:
        """No keys yet."""
        return "pending"

    def unprotect(self, data: Packet) -> bytes | None:
        """Drop."""
        return None

    unprotect_rtcp = protect = protect_rtcp = unprotect


class LegSrtp:
    """SRTP state of one relay leg: unprotect what its phone sends, protect what it gets.

    ``remote`` is the phone's ``a=crypto`` (its sending key), ``local`` ours
    (RFC 4568 §6.1: each side's attribute carries the key it sends with).
    The four step attributes are the relay's per-packet transforms, each one
    closure over its cipher's libsrtp session (no method chain per packet);
    each returns None for a packet that must be dropped.
    """

    __slots__ = (
        "inbound",
        "local",
        "outbound",
        "protect",
        "protect_into",
        "protect_rtcp",
        "remote",
        "unprotect",
        "unprotect_into",
        "unprotect_rtcp",
    )

    unprotect: Step
    """SRTP (or muxed SRTCP) from the phone -> plain, for the other leg."""
    unprotect_rtcp: Step
    """SRTCP from the phone's RTCP port -> plain RTCP."""
    protect: Step
    """Plain RTP (or muxed RTCP) for the phone -> SRTP."""
    protect_rtcp: Step
    """Plain RTCP for the phone's RTCP port -> SRTCP."""
    unprotect_into: InPlace | None
    """:attr:`unprotect` on the scratch buffer (None without the cffi binding)."""
    protect_into: InPlace | None
    """:attr:`protect` on the scratch buffer (None without the cffi binding)."""

    def __init__(
        self, local: CryptoAttribute, remote: CryptoAttribute, *, previous: LegSrtp | None = None
    ) -> None:
        if local.suite != remote.suite:
            raise ValueError("both directions of a leg use the negotiated suite")
        self.local = local
        self.remote = remote
        self.inbound = SrtpCipher(remote.suite, remote.key_salt, outbound=False)
        self.outbound: SrtpCipher
        if (
            previous is not None
            and previous.local.key_salt == local.key_salt
            and previous.suite == local.suite
        ):
            # RFC 4568 §7.1.4: only the phone rekeyed; our direction keeps its context (ROC)
            self.outbound = previous.outbound
        else:
            self.outbound = SrtpCipher(local.suite, local.key_salt, outbound=True)
        self.unprotect = _step(self.inbound, rtcp_port=False)
        self.unprotect_rtcp = _step(self.inbound, rtcp_port=True)
        self.protect = _step(self.outbound, rtcp_port=False)
        self.protect_rtcp = _step(self.outbound, rtcp_port=True)
        self.unprotect_into = _step_into(self.inbound)
        self.protect_into = _step_into(self.outbound)

    @property
    def suite(self) -> str:
        """The negotiated crypto suite."""
        return self.local.suite

    @property
    def dropped_plain(self) -> int:
        """Inbound packets that were not RTP version 2 (STUN, keepalives, garbage)."""
        return self.inbound.not_rtp

    @property
    def auth_failures(self) -> int:
        """Inbound packets refused by libsrtp (bad tag, replayed, too short)."""
        return self.inbound.failures

    def same_keys(self, local: CryptoAttribute, remote: CryptoAttribute) -> bool:
        """Whether a renegotiation kept both keys (then the contexts, and ROC, stay)."""
        return (
            local.suite == self.local.suite
            and local.key_salt == self.local.key_salt
            and remote.key_salt == self.remote.key_salt
        )

    def __repr__(self) -> str:
        return f"LegSrtp({self.suite})"


def _step(cipher: SrtpCipher, *, rtcp_port: bool) -> Step:
    """One relay direction's packet step on ``cipher``, flattened for the hot path.

    Per packet: the RTP checks, one copy into the scratch buffer, one libsrtp
    call, one copy out; no further Python call.  On the RTP port, RTCP
    multiplexed per RFC 5761 §4 (second octet 192-223) takes the SRTCP
    transform (RFC 3711 §3.4); on the RTCP port every packet does.
    """
    rtp_func, rtcp_func = cipher._rtp, cipher._rtcp
    if rtp_func is None or rtcp_func is None:  # pragma: no cover - no cffi binding
        return _public_step(cipher, rtcp_port=rtcp_port)
    srtp, cdata, buf, cell = cipher._srtp, cipher._cdata, cipher._buf, cipher._len
    shortest = 8 if rtcp_port else 12

    def step(data: Packet) -> bytes | None:
        size = len(data)
        if size < shortest or size > 2048 or data[0] >> 6 != 2:
            _refuse(cipher, size)
            return None
        func = rtcp_func if rtcp_port or 192 <= data[1] <= 223 else rtp_func
        buf[0:size] = data
        cell[0] = size
        if func(srtp, cdata, cell):
            cipher.failures += 1
            return None
        return buf[0 : cell[0]]  # type: ignore[no-any-return]

    return step


def _step_into(cipher: SrtpCipher) -> InPlace | None:
    """The RTP port's step on the scratch buffer: what :func:`_step` does, minus both copies.

    The packet is already in the buffer (received into it); per packet the
    RTP checks, the length cell and one libsrtp call, in place.  RTCP
    multiplexed on the port (RFC 5761 §4) takes SRTCP as in :func:`_step`.
    """
    rtp_func, rtcp_func = cipher._rtp, cipher._rtcp
    if rtp_func is None or rtcp_func is None:  # pragma: no cover - no cffi binding
        return None
    srtp, cdata, cell = cipher._srtp, cipher._cdata, cipher._len
    view, length = _views()

    def step(size: int) -> int:
        if size < 12 or view[0] >> 6 != 2:
            cipher.not_rtp += 1
            return -1
        length[0] = size
        if (rtcp_func if 192 <= view[1] <= 223 else rtp_func)(srtp, cdata, cell):
            cipher.failures += 1
            return -1
        return length[0]

    return step


def _public_step(cipher: SrtpCipher, *, rtcp_port: bool) -> Step:  # pragma: no cover
    shortest = 8 if rtcp_port else 12

    def step(data: Packet) -> bytes | None:
        if len(data) < shortest or data[0] >> 6 != 2:
            _refuse(cipher, len(data))
            return None
        if rtcp_port or 192 <= data[1] <= 223:
            return cipher.rtcp(data)
        return cipher.rtp(data)

    return step


def _refuse(cipher: SrtpCipher, size: int) -> None:
    """Count a packet libsrtp never sees: oversized (a failure) or not RTP."""
    if size > 2048:
        cipher.failures += 1
    else:
        cipher.not_rtp += 1
