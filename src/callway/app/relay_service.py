"""``callway relay``: a standalone media relay driven by rtpengine's ng protocol.

The seed (SEED.md §7) splits the media relay out as its own service behind
Kamailio.  Operators do that with rtpengine: Kamailio's ``rtpengine``
module sends ``offer``/``answer``/``delete`` over UDP and the relay rewrites
the SDP to its own ports.  This is that service: the asyncio shell around
:class:`callway.ng.engine.NgEngine` (the protocol, sans-I/O), one UDP
control socket, and for each relayed stream a
:class:`callway.media.relay.RelaySession` with two port pairs from a
:class:`callway.media.ports.PortPool` (the PBX's own relay, used as it is).

Every second the engine deletes calls with no media for ``timeout``
seconds (rtpengine's ``--timeout``) and due delayed deletes; stopping the
service (SIGTERM, SIGINT) frees every port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from callway.media.ports import PortPool, PortsExhaustedError
from callway.media.relay import RelayLeg, RelaySession
from callway.ng.engine import DEFAULT_TIMEOUT, NgEngine
from callway.ng.media import LegCounters, LegName, OutOfPortsError
from callway.ng.protocol import (
    NgFrameError,
    Reply,
    Request,
    error_reply,
    format_reply,
    split_cookie,
)

__all__ = [
    "DEFAULT_NG_PORT",
    "READY_MARKER",
    "RelayService",
    "RelaySettings",
    "RelayStream",
    "parse_listen",
    "parse_ports",
]

log = logging.getLogger("callway.relay")

DEFAULT_NG_PORT = 2223  # rtpengine's customary --listen-ng port
READY_MARKER = "callway relay ready"
_EXPIRE_INTERVAL = 1.0  # seconds between timeout sweeps


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """Where the relay listens for ng commands and which media ports it hands out."""

    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_NG_PORT
    media_ip: str = "127.0.0.1"  # media sockets bind here
    advertise: str | None = None  # the address written into SDP (default: media_ip)
    port_min: int = 30000
    port_max: int = 40000
    timeout: float = DEFAULT_TIMEOUT  # seconds without media before a call is deleted

    @property
    def sdp_address(self) -> str:
        """The media address the parties are told."""
        return self.advertise or self.media_ip


def parse_listen(text: str) -> tuple[str, int]:
    """``udp:IP:PORT``, ``IP:PORT`` or ``PORT`` (IPv6 in brackets) as ``(host, port)``."""
    value = text.strip()
    if value.lower().startswith("udp:"):
        value = value[4:]
    elif ":" in value and value.split(":", 1)[0].isalpha():
        raise ValueError(f"the ng control socket is UDP only: {text!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad listen address {text!r}: expected udp:IP:PORT") from None
    if not 0 < port <= 65535:
        raise ValueError(f"listen port {port} outside 1-65535")
    return host, port


def parse_ports(text: str) -> tuple[int, int]:
    """``MIN-MAX`` (inclusive) as ``(min, max)``."""
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError:
        raise ValueError(f"bad port range {text!r}: expected MIN-MAX") from None
    if not dash or not 0 < first < last <= 65535:
        raise ValueError(f"bad port range {text!r}: needs 0 < MIN < MAX <= 65535")
    return first, last


class RelayStream:
    """One relayed stream for the engine: a started :class:`RelaySession`."""

    def __init__(self, session: RelaySession) -> None:
        self.session = session

    def leg(self, name: LegName) -> RelayLeg:
        """Leg ``a`` (towards the offerer) or ``b`` (towards the answerer)."""
        return self.session.leg(name)

    def counters(self, name: LegName) -> LegCounters:
        """The leg's counters as the engine reads them."""
        stats = self.session.leg(name).stats()
        remote = stats.remote_rtp
        return LegCounters(
            packets_in=stats.packets_in,
            bytes_in=stats.bytes_in,
            packets_out=stats.packets_out,
            bytes_out=stats.bytes_out,
            rtcp_packets_in=stats.rtcp_packets_in,
            rtcp_packets_out=stats.rtcp_packets_out,
            errors=stats.dropped + stats.send_errors,
            last_packet=stats.last_packet_at,
            remote=(str(remote[0]), int(remote[1])) if remote is not None else None,
        )

    def close(self) -> None:
        """Stop relaying and return both port pairs to the pool."""
        self.session.close()


class _ControlProtocol(asyncio.DatagramProtocol):
    def __init__(self, service: RelayService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.service.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("ng control socket error: %s", exc)


class RelayService:
    """The ng control socket, the engine, the port pool and the relay sessions."""

    def __init__(
        self, settings: RelaySettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        # Ports are unbound when a call is deleted, as rtpengine does (no idle pairs).
        self.pool = PortPool(settings.media_ip, settings.port_min, settings.port_max, keep_idle=0)
        self.engine = NgEngine(self._open_stream, settings.sdp_address, timeout=settings.timeout)
        self.engine.observer = self._logged
        self.transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def address(self) -> tuple[str, int]:
        """The control socket's bound address (the port, when 0 was asked for)."""
        if self.transport is None:
            return self.settings.listen_host, self.settings.listen_port
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    # -- lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        """Bind the control socket and start the timeout sweep."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        settings = self.settings
        transport, _protocol = await loop.create_datagram_endpoint(
            lambda: _ControlProtocol(self), local_addr=(settings.listen_host, settings.listen_port)
        )
        self.transport = transport
        self._sweeper = loop.create_task(self._sweep())
        host, port = self.address
        log.info(
            "%s: ng on udp:%s:%d, media %s (SDP %s) ports %d-%d, timeout %g s",
            READY_MARKER, host, port, settings.media_ip, settings.sdp_address,
            self.pool.start, self.pool.end, settings.timeout,
        )  # fmt: skip

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM, then free every port."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        """Close the control socket and every relayed stream."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        calls = len(self.engine.calls)
        self.engine.close()
        log.info("callway relay stopped: %d call(s) closed, %d port pair(s) in use",
                 calls, self.pool.in_use)  # fmt: skip
        self._stopped.set()

    # -- control datagrams --------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Answer one ng command (from the cache when its cookie was seen)."""
        try:
            reply = self.engine.receive(data, self.clock())
        except Exception:  # a bug must not kill the relay: answer an error
            log.exception("ng command from %s:%s failed", addr[0], addr[1])
            reply = _internal_error(data)
        if reply is None:
            log.debug("ng datagram without a cookie from %s:%s dropped", addr[0], addr[1])
            return
        if self.transport is not None:
            self.transport.sendto(reply, addr)

    def _open_stream(self) -> RelayStream:
        try:
            session = RelaySession(self.pool, symmetric=True, clock=self.clock)
        except PortsExhaustedError as exc:
            log.warning("ng: %s", exc)
            raise OutOfPortsError(str(exc)) from None
        session.start(self._loop)
        return RelayStream(session)

    def _logged(self, request: Request, reply: Reply) -> None:
        result = reply.get("result")
        reason = reply.get("error-reason")
        detail = f" ({reason})" if isinstance(reason, str) else ""
        level = logging.DEBUG if request.command in ("query", "list") else logging.INFO
        log.log(
            level, "ng %s call-id=%s from-tag=%s to-tag=%s: %s%s; %d call(s), %d port pair(s)",
            request.command, request.call_id, request.from_tag, request.to_tag, result, detail,
            len(self.engine.calls), self.pool.in_use,
        )  # fmt: skip

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(_EXPIRE_INTERVAL)
            for call_id in self.engine.expire(self.clock()):
                log.info("ng call %s deleted: no media for %g s (or a delayed delete)",
                         call_id, self.settings.timeout)  # fmt: skip


def _internal_error(data: bytes) -> bytes | None:
    with contextlib.suppress(NgFrameError):
        cookie, _payload = split_cookie(data)
        return format_reply(cookie, error_reply("Internal error"))
    return None


async def serve(settings: RelaySettings) -> None:
    """Run ``callway relay`` until it is stopped."""
    await RelayService(settings).run()
