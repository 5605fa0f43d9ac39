"""RTP/RTCP relay sessions: the PBX's media anchor for one call.

Each of the two legs (A, B) owns an RTP and an RTCP socket at the PBX (a
:class:`~callway.media.ports.PortPair`).  What arrives on leg A's RTP socket
leaves from leg B's RTP socket to B's remote address, and the other way
round; RTCP likewise.  Each socket's endpoint is a
:class:`~callway.rtp.latch.Latch`, which decides where that leg's media goes
(the signalled address, then symmetric-RTP latching, RFC 4961).  Per
direction an optional transform rewrites each packet: it is composed from
the receiving leg's SRTP unprotect (RFC 3711, :mod:`callway.media.srtp`),
a :class:`~callway.rtp.transcode.Transcoder` (payload types, G.711 laws),
and the sending leg's SRTP protect, so SRTP on one leg and plain RTP on the
other (or SRTP with different keys on both) are bridged; a packet a step
refuses (bad SRTP authentication tag, replay) is dropped and counted.

The hot path is a reader callback per socket (``loop.add_reader``) that
reads with ``recvfrom`` and forwards each datagram with one ``sendto``: per
packet one comparison decides the source is the latched one, and the only
allocations are the received bytes and address tuple.  The clock is read
once per wakeup, counters are slot increments on the endpoint, and the RTP
timeout is checked by a periodic timer, not per packet.  The transform is
one callable per direction, composed when keys or codecs change, so a plain
call pays one ``is None`` test for it.  A direction whose only steps are SRTP
(no transcoding) has its own reader, :meth:`RelaySession._pump_into`: the
datagram is received into libsrtp's scratch buffer, transformed in place and
sent from it, so SRTP adds one libsrtp call per packet and no bytes object.

The batch is adaptive.  At RTP rates (one packet per socket every 20 ms)
nearly every wakeup finds one datagram, and the ``recvfrom`` that ends a
drain loop costs a failing syscall plus a ``BlockingIOError`` (measured: a
third of the per-packet cost).  So a wakeup reads one datagram, and only a
socket woken again within ``_HOT_GAP`` (a backlog after a stall, or a very
fast stream) is drained up to ``_BATCH`` datagrams; the level-triggered
selector wakes the loop again for anything left.

RTCP multiplexed on the RTP port (RFC 5761) is relayed as RTP would be; an
answerer that relays to a non-multiplexing peer must decline ``rtcp-mux``.

Reception quality costs the RTP path nothing: each phone reports how it
receives what we send it in its RTCP sender and receiver reports (RFC 3550
§6.4: cumulative packets lost, interarrival jitter).  Every RTCP packet
arriving on a leg's RTCP socket passes through the middle step of that
direction's transform, which parses it (after SRTCP unprotect) and keeps the
leg's latest report block; :meth:`RelayLeg.stats` exposes it as ``lost``,
``expected`` (the RTP packets relayed to that phone when the report came)
and ``jitter_ms``.  Multiplexed RTCP is not inspected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callway.media.ports import PortPair, PortPool
from callway.media.srtp import InPlace, LegCrypto, LegSrtp, scratch_view
from callway.rtp.latch import Latch, SocketAddress
from callway.rtp.packet import ReceiverReport, SenderReport, parse_rtcp
from callway.rtp.transcode import Transcoder
from callway.stun.server import binding_response

__all__ = ["LegStats", "RelayLeg", "RelaySession"]

log = logging.getLogger("callway.media.relay")

_BATCH = 32
_HOT_GAP = 0.002  # seconds: a socket woken again this soon has a backlog
_MAX_DATAGRAM = 2048  # RTP over UDP stays under the path MTU
# Where SRTP legs' datagrams are received and transformed (the fallback is never
# used: without the cffi binding no leg has in-place steps).
_SCRATCH = scratch_view() or memoryview(bytearray(_MAX_DATAGRAM))
_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})
_REPORT_CLOCK = 8000  # Hz: RTP timestamp units of the reported jitter (G.711)

TimeoutHandler = Callable[["RelaySession", str], None]
# One relay direction's packet rewrite; None drops the packet.
Transform = Callable[[bytes], "bytes | bytearray | None"]


@dataclass(frozen=True, slots=True)
class LegStats:
    """Counters of one leg: ``*_in`` arrived from its phone, ``*_out`` were sent to it."""

    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int
    rtcp_packets_in: int
    rtcp_packets_out: int
    dropped: int  # refused by latching (stray or hijacking sources)
    send_errors: int
    last_packet_at: float | None  # clock time of the last accepted RTP packet
    remote_rtp: SocketAddress | None
    remote_rtcp: SocketAddress | None
    latched: bool
    rejected: int = 0  # refused by the transform: SRTP authentication or replay failures
    srtp: str | None = None  # the SRTP suite on this leg, None for plain RTP
    # From the phone's latest RTCP report (None until one arrives): how it receives us.
    lost: int | None = None  # cumulative packets lost (RFC 3550 §6.4.1)
    expected: int | None = None  # RTP packets relayed to the phone when it reported
    jitter_ms: float | None = None  # interarrival jitter, ms (8 kHz clock)
    fraction_lost: float | None = None  # loss over the last report interval, 0..1


class _Endpoint(Latch):
    """One relay socket: its latching state (it is the socket's latch) and counters.

    The socket's bound ``recvfrom``/``sendto`` are kept so the hot path does
    not rebuild them, and ``transform`` rewrites what this socket receives.
    """

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "dropped",
        "into",
        "leg",
        "packets_in",
        "packets_out",
        "recvfrom",
        "recvfrom_into",
        "rejected",
        "send_errors",
        "sendto",
        "sock",
        "transform",
        "woken",
    )

    def __init__(self, sock: socket.socket, leg: RelayLeg | None, **latch: Any) -> None:
        super().__init__(**latch)
        self.sock = sock
        self.recvfrom = sock.recvfrom
        self.recvfrom_into = sock.recvfrom_into
        self.sendto = sock.sendto
        self.leg = leg  # set on RTP endpoints: their latching moves unlatched RTCP
        self.transform: Transform | None = None
        self.into: InPlace | None = None  # the transform in place, when there is one
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0
        self.dropped = self.send_errors = self.rejected = 0
        self.woken = 0.0


def _normalise(address: tuple[str, int] | None, family: int) -> SocketAddress | None:
    if address is None or address[0] in _HOLD_ADDRESSES:
        return None
    if family == socket.AF_INET6:
        return (address[0], address[1], 0, 0)  # the shape recvfrom reports on IPv6
    return (address[0], address[1])


class RelayLeg:
    """One side of a relayed call: its PBX ports and where its phone is."""

    def __init__(self, name: str, pair: PortPair, clock: Callable[[], float], **latch: Any) -> None:
        self.name = name
        self.pair = pair
        self._clock = clock
        self.rtp = _Endpoint(pair.rtp, self, **latch)
        self.rtcp = _Endpoint(pair.rtcp, None, **latch)
        self._family = socket.AF_INET6 if ":" in pair.host else socket.AF_INET
        self.srtp: LegCrypto | None = None  # set through RelaySession.set_srtp
        # The phone's latest report block: (cumulative lost, expected, jitter ms, fraction).
        self.report: tuple[int, int, float, float] | None = None
        self.reports = 0  # RTCP reports with a report block seen from this phone
        now = clock()
        self.rtp.reset(None, now)
        self.rtcp.reset(None, now)

    @property
    def local_host(self) -> str:
        """The address the leg's sockets are bound to."""
        return self.pair.host

    @property
    def local_port(self) -> int:
        """The PBX's RTP port for this leg (goes into the SDP sent to its phone)."""
        return self.pair.rtp_port

    @property
    def local_rtcp_port(self) -> int:
        """The PBX's RTCP port for this leg."""
        return self.pair.rtcp_port

    @property
    def remote_rtp(self) -> SocketAddress | None:
        """Where this leg's RTP is sent now (signalled or latched)."""
        return self.rtp.remote

    def send_rtp(self, data: bytes, target: tuple[str, int] | SocketAddress) -> None:
        """Send a locally made RTP packet (prompts, music) to this leg's phone, protected."""
        if self.pair.released:  # the pair may already serve another call
            return
        srtp = self.srtp
        if srtp is not None:
            protected = srtp.protect(data)
            if protected is None:
                return
            data = protected
        self.pair.rtp.sendto(data, target)

    def set_remote(self, rtp: tuple[str, int] | None, rtcp: tuple[str, int] | None = None) -> None:
        """Take the phone's address from its SDP and learn again (setup, re-INVITE).

        RTCP defaults to the RTP port plus one (RFC 3550 §11); a hold address
        (``0.0.0.0``, RFC 3264 §8.4) means nothing is sent until it latches.
        """
        if rtcp is None and rtp is not None:
            rtcp = (rtp[0], rtp[1] + 1)
        now = self._clock()
        self.rtp.reset(_normalise(rtp, self._family), now)
        self.rtcp.reset(_normalise(rtcp, self._family), now)

    def relatch(self) -> None:
        """Learn the source again, keeping the signalled addresses."""
        now = self._clock()
        self.rtp.relatch(now)
        self.rtcp.relatch(now)

    def observe_rtcp(self, data: bytes | bytearray) -> bytes | bytearray:
        """Keep the first report block of an RTCP SR/RR from this leg's phone; pass it on.

        The middle step of the RTCP transform (after SRTCP unprotect): runs
        only for RTCP, never on the RTP path.  A packet that does not parse
        is relayed unchanged and not counted.
        """
        try:
            packets = parse_rtcp(bytes(data))
        except ValueError:  # RtpError: not RTCP we understand
            return data
        for packet in packets:
            if isinstance(packet, SenderReport | ReceiverReport) and packet.reports:
                block = packet.reports[0]
                lost = block.packets_lost
                expected = max(self.rtp.packets_out, lost, 0)
                jitter_ms = block.jitter * 1000.0 / _REPORT_CLOCK
                self.report = (lost, expected, round(jitter_ms, 2), block.fraction_lost / 256.0)
                self.reports += 1
                break
        return data

    def stats(self) -> LegStats:
        """A snapshot of the leg's counters."""
        rtp, rtcp = self.rtp, self.rtcp
        report = self.report
        return LegStats(
            packets_in=rtp.packets_in,
            bytes_in=rtp.bytes_in,
            packets_out=rtp.packets_out,
            bytes_out=rtp.bytes_out,
            rtcp_packets_in=rtcp.packets_in,
            rtcp_packets_out=rtcp.packets_out,
            dropped=rtp.dropped + rtcp.dropped,
            send_errors=rtp.send_errors + rtcp.send_errors,
            last_packet_at=rtp.last_heard if rtp.packets_in else None,
            remote_rtp=rtp.remote,
            remote_rtcp=rtcp.remote,
            latched=rtp.latched,
            rejected=rtp.rejected + rtcp.rejected,
            srtp=self.srtp.suite if self.srtp is not None else None,
            lost=report[0] if report is not None else None,
            expected=report[1] if report is not None else None,
            jitter_ms=report[2] if report is not None else None,
            fraction_lost=report[3] if report is not None else None,
        )

    def follow_rtp(self) -> None:
        """Point unlatched RTCP at the latched RTP source's port + 1, as Asterisk does."""
        remote = self.rtp.remote
        if remote is not None and not self.rtcp.latched:
            self.rtcp.remote = (remote[0], remote[1] + 1, *remote[2:])


class RelaySession:
    """Relays one call's RTP and RTCP between legs ``a`` and ``b``.

    ``symmetric`` latches to the first source heard (Asterisk
    ``rtp_symmetric``); otherwise a new source is learned only within
    ``latch_window`` seconds of setup or of :meth:`RelayLeg.relatch`, or after
    the current one has been silent for ``latch_timeout``.  ``on_timeout(session,
    leg_name)`` fires once when a leg sent no RTP for ``rtp_timeout`` seconds
    (Asterisk ``rtp_timeout``; 0 disables); :meth:`set_rtp_timeout` changes
    it, e.g. to ``rtp_timeout_hold`` while the call is on hold.
    """

    def __init__(
        self,
        pool: PortPool,
        *,
        host: str | None = None,
        symmetric: bool = False,
        latch_window: float = 2.0,
        latch_timeout: float = 3.0,
        rtp_timeout: float = 0.0,
        on_timeout: TimeoutHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        latch = {"symmetric": symmetric, "window": latch_window, "timeout": latch_timeout}
        first = pool.allocate(host)
        try:
            second = pool.allocate(host)
        except BaseException:
            first.close()
            raise
        self.a = RelayLeg("a", first, clock, **latch)
        self.b = RelayLeg("b", second, clock, **latch)
        self.rtp_timeout = rtp_timeout
        self.on_timeout = on_timeout
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = {"a": False, "b": False}
        self._counted_from = 0.0  # silence before this does not count (a timeout change)
        self._closed = False
        self._transcoders: tuple[Transcoder | None, Transcoder | None] = (None, None)
        self._compose()  # RTCP always passes the report observer

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def mark(self, name: str, tos: int) -> None:
        """Mark leg ``name``'s RTP and RTCP with the ToS byte ``tos`` (DSCP, RFC 2474)."""
        self.leg(name).pair.mark(tos)

    def leg(self, name: str) -> RelayLeg:
        """Leg ``"a"`` or ``"b"``."""
        if name not in ("a", "b"):
            raise ValueError(f"no leg {name!r}")
        return self.a if name == "a" else self.b

    def set_transcoding(
        self, a_to_b: Transcoder | None = None, b_to_a: Transcoder | None = None
    ) -> None:
        """Rewrite packets per direction (None: relay unchanged); takes effect at once."""
        if self._transcoders == (a_to_b, b_to_a):
            return
        self._transcoders = (a_to_b, b_to_a)
        self._compose()

    def set_srtp(self, name: str, srtp: LegCrypto | None) -> None:
        """SRTP of leg ``name`` (None: plain RTP; a BlockedLeg: no keys yet); at once."""
        leg = self.leg(name)
        if srtp is None and leg.srtp is None:
            return
        leg.srtp = srtp
        self._compose()

    def _compose(self) -> None:
        """Build each direction's transform: unprotect, transcode, protect.

        An RTP direction whose only steps are SRTP (no transcoding) also gets
        them in place (``into``): its socket is then read into the SRTP
        scratch buffer by :meth:`_pump_into`.
        """
        a, b = self.a, self.b
        a_to_b, b_to_a = self._transcoders
        a.rtp.into = None if a_to_b else _chain_into(a.srtp, b.srtp)
        b.rtp.into = None if b_to_a else _chain_into(b.srtp, a.srtp)
        a.rtp.transform = _chain(
            a.srtp.unprotect if a.srtp else None,
            a_to_b.apply if a_to_b else None,
            b.srtp.protect if b.srtp else None,
        )
        b.rtp.transform = _chain(
            b.srtp.unprotect if b.srtp else None,
            b_to_a.apply if b_to_a else None,
            a.srtp.protect if a.srtp else None,
        )
        a.rtcp.transform = _chain(
            a.srtp.unprotect_rtcp if a.srtp else None,
            a.observe_rtcp,
            b.srtp.protect_rtcp if b.srtp else None,
        )
        b.rtcp.transform = _chain(
            b.srtp.unprotect_rtcp if b.srtp else None,
            b.observe_rtcp,
            a.srtp.protect_rtcp if a.srtp else None,
        )
        if self._loop is not None and not self._closed:
            self._register(self._loop)  # the RTP readers follow ``into``

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start relaying on ``loop`` (default: the running loop)."""
        if self._closed:
            raise RuntimeError("relay session is closed")
        loop = loop or asyncio.get_running_loop()
        self._loop = loop
        self._register(loop)
        self._schedule_check()

    def close(self) -> None:
        """Stop relaying and return both port pairs to the pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._loop if self._loop is not None and not self._loop.is_closed() else None
        for leg in (self.a, self.b):
            if leg.pair.released:  # given back behind our back: just stop reading
                if loop is not None and leg.rtp.sock.fileno() >= 0:
                    loop.remove_reader(leg.rtp.sock.fileno())
                    loop.remove_reader(leg.rtcp.sock.fileno())
            else:  # parked on the loop: our readers become discarding ones
                leg.pair.close(park_on=loop)
            # endpoint -> leg and transforms bound to the leg are cycles: drop them so
            # the call is freed by reference counting, not left to the collector
            leg.rtp.leg = None
            leg.rtp.transform = leg.rtcp.transform = leg.rtp.into = None
        self._loop = None

    def __enter__(self) -> RelaySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _register(self, loop: asyncio.AbstractEventLoop) -> None:
        """Our readers on the four sockets; a pair parked on this loop only swaps callbacks."""
        a, b = self.a, self.b
        for leg in (a, b):
            if leg.pair.parked is not loop:
                leg.pair.unpark()  # parked on another loop (or not at all)
            leg.pair.parked = None  # the readers are ours until close() parks them again
        loop.add_reader(a.rtp.sock.fileno(), self._reader(a.rtp), a.rtp, b.rtp)
        loop.add_reader(b.rtp.sock.fileno(), self._reader(b.rtp), b.rtp, a.rtp)
        loop.add_reader(a.rtcp.sock.fileno(), self._pump, a.rtcp, b.rtcp)
        loop.add_reader(b.rtcp.sock.fileno(), self._pump, b.rtcp, a.rtcp)

    def _reader(self, src: _Endpoint) -> Callable[[_Endpoint, _Endpoint], None]:
        return self._pump if src.into is None else self._pump_into

    def _pump(self, src: _Endpoint, dst: _Endpoint) -> None:
        """Forward what ``src`` received to ``dst``'s remote: the per-packet hot path.

        The common wakeup (a socket heard again after a packet interval) reads
        one datagram inline; a socket woken again within ``_HOT_GAP`` drains
        a batch through :meth:`_drain`.
        """
        now = self._clock()
        if now - src.woken < _HOT_GAP:
            src.woken = now
            self._drain(src, dst, now)
            return
        src.woken = now
        try:
            data, source = src.recvfrom(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. an ICMP error queued on the socket
            log.debug("relay receive error: %s", exc)
            return
        _forward(src, dst, data, source, now)

    def _drain(self, src: _Endpoint, dst: _Endpoint, now: float) -> None:
        """Read and forward up to ``_BATCH`` datagrams (a backlog or a very fast stream)."""
        for _ in range(_BATCH):
            try:
                data, source = src.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("relay receive error: %s", exc)
                continue
            _forward(src, dst, data, source, now)

    def _pump_into(self, src: _Endpoint, dst: _Endpoint) -> None:
        """:meth:`_pump` for a direction transformed in place (SRTP only, no transcoding).

        The datagram is received into the SRTP scratch buffer, transformed
        there and sent from a slice of it: no bytes object, no copy.
        """
        now = self._clock()
        if now - src.woken < _HOT_GAP:
            src.woken = now
            self._drain_into(src, dst, now)
            return
        src.woken = now
        try:
            size, source = src.recvfrom_into(_SCRATCH, _MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("relay receive error: %s", exc)
            return
        _forward_into(src, dst, size, source, now)

    def _drain_into(self, src: _Endpoint, dst: _Endpoint, now: float) -> None:
        """:meth:`_drain` through the scratch buffer."""
        for _ in range(_BATCH):
            try:
                size, source = src.recvfrom_into(_SCRATCH, _MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("relay receive error: %s", exc)
                continue
            _forward_into(src, dst, size, source, now)

    def set_rtp_timeout(self, seconds: float) -> None:
        """Hang up after ``seconds`` without RTP from now on (0: never).

        Silence is counted from this call, so a phone that stayed quiet
        while held is not cut off the moment the call is resumed.
        """
        self.rtp_timeout = seconds
        self._counted_from = self._clock()
        self._timed_out = {"a": False, "b": False}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._schedule_check()

    def _schedule_check(self) -> None:
        if self.rtp_timeout > 0 and self._loop is not None and not self._closed:
            interval = min(max(self.rtp_timeout / 4, 0.05), 1.0)
            self._timer = self._loop.call_later(interval, self._check_timeouts)

    def _check_timeouts(self) -> None:
        now = self._clock()
        for leg in (self.a, self.b):
            silent = now - max(leg.rtp.last_heard, self._counted_from) >= self.rtp_timeout
            if silent and not self._timed_out[leg.name] and self.on_timeout is not None:
                log.info("no RTP on leg %s for %.1f s", leg.name, self.rtp_timeout)
                try:
                    self.on_timeout(self, leg.name)
                except Exception:
                    log.exception("on_timeout handler failed")
            self._timed_out[leg.name] = silent
        self._schedule_check()


def _forward(
    src: _Endpoint, dst: _Endpoint, data: bytes, source: SocketAddress, now: float
) -> None:
    """One datagram from ``src``'s socket: STUN, latching, counters, transform, send."""
    if data and data[0] < 4:  # RFC 7983: STUN (keep-alive, consent) on the media port
        reply = binding_response(bytes(data), source)
        if reply is not None:
            with contextlib.suppress(OSError):
                src.sendto(reply, source)
            return
    if (source != src.remote or not src.latched) and not _admit(src, source, now):
        src.dropped += 1
        return
    size = len(data)
    src.last_heard = now
    src.packets_in += 1
    src.bytes_in += size
    target = dst.remote
    if target is None:
        return
    transform = src.transform
    if transform is not None:
        out = transform(data)
        if out is None:
            src.rejected += 1
            return
        data, size = out, len(out)  # type: ignore[assignment]
    try:
        dst.sendto(data, target)
    except OSError:
        dst.send_errors += 1
        return
    dst.packets_out += 1
    dst.bytes_out += size


def _forward_into(
    src: _Endpoint, dst: _Endpoint, size: int, source: SocketAddress, now: float
) -> None:
    """:func:`_forward` for a datagram of ``size`` bytes in the scratch buffer."""
    view = _SCRATCH
    if size and view[0] < 4:  # STUN, as in _forward: the buffer is copied out first
        _forward(src, dst, view[:size].tobytes(), source, now)
        return
    if (source != src.remote or not src.latched) and not _admit(src, source, now):
        src.dropped += 1
        return
    src.last_heard = now
    src.packets_in += 1
    src.bytes_in += size
    target = dst.remote
    if target is None:
        return
    into = src.into
    if into is None:  # pragma: no cover - recomposed by a callback of this wakeup
        return
    size = into(size)
    if size < 0:
        src.rejected += 1
        return
    try:
        dst.sendto(view[:size], target)
    except OSError:
        dst.send_errors += 1
        return
    dst.packets_out += 1
    dst.bytes_out += size


def _chain_into(receiving: LegCrypto | None, sending: LegCrypto | None) -> InPlace | None:
    """One RTP direction's SRTP steps in place (None: plain, or a step that has no in-place form).

    ``receiving`` is the SRTP of the leg the packets arrive on (its unprotect),
    ``sending`` that of the leg they leave on (its protect).
    """
    if receiving is None and sending is None:
        return None
    first = receiving.unprotect_into if isinstance(receiving, LegSrtp) else None
    last = sending.protect_into if isinstance(sending, LegSrtp) else None
    if (receiving is not None and first is None) or (sending is not None and last is None):
        return None  # e.g. a BlockedLeg: the bytes path drops everything
    if first is None or last is None:
        return first or last
    head, tail = first, last

    def both(size: int) -> int:
        size = head(size)
        return size if size < 0 else tail(size)

    return both


def _chain(
    first: Transform | None, middle: Transform | None, last: Transform | None
) -> Transform | None:
    """Compose up to three packet steps into one callable (None when there are none)."""
    steps = [step for step in (first, middle, last) if step is not None]
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        head, tail = steps

        def pair(data: bytes) -> bytes | bytearray | None:
            out = head(data)
            return None if out is None else tail(out)  # type: ignore[arg-type]

        return pair

    one, two, three = steps

    def triple(data: bytes) -> bytes | bytearray | None:
        out = one(data)
        if out is None:
            return None
        out = two(out)  # type: ignore[arg-type]
        return None if out is None else three(out)  # type: ignore[arg-type]

    return triple


def _admit(endpoint: _Endpoint, source: SocketAddress, now: float) -> bool:
    """The latching decision for a packet not from the latched source (rare path)."""
    moved = source != endpoint.remote
    if not endpoint.accept(source, now):
        return False
    if moved:
        log.info("media latched to %s:%s", source[0], source[1])
        if endpoint.leg is not None:
            endpoint.leg.follow_rtp()
    return True
