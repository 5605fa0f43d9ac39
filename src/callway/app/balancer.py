"""Composition root of ``callway balancer``: dispatcher.list -> a SIP load balancer.

Wires the sans-I/O dispatcher (algorithms, prober) and proxy rules to the
SIP stack: one or more listening sockets, OPTIONS probes sent as client
transactions whose answers go to the prober, up/down events logged (and
posted to an alert webhook when configured).  SIGHUP reloads
``dispatcher.list``; a broken list is reported with its line number and the
old one stays in force.  The console (``callway console``, Kamailio's
``dispatcher`` commands, :mod:`callway.app.balancer_console`) is served on
``STATE_DIR/callway.ctl``.

Every UDP datagram first meets the fast path (:mod:`callway.balancer.fastpath`),
which relays the messages of ordinary calls by editing their bytes; whatever
it declines (REGISTER and Path, TCP, requests from the nodes that start a
dialog, overload, errors to answer) goes to the SIP stack and
:class:`~callway.app.balancer_tu.BalancerUser`, the full RFC 3261 §16 proxy.

``--workers N`` forks N processes sharing the UDP port; how they share the
calls and the destination states is told in :mod:`callway.app.balancer_workers`.

Overload: when datagrams wait in the kernel's queue longer than
:data:`OVERLOAD_LAG` (the loop has fallen behind), new INVITEs are answered
``503 Service Unavailable`` with ``Retry-After`` at once instead of being
relayed, so the calls already under way finish and the balancer does not
collapse into a retransmission storm.

``--media-relay udp:IP:PORT`` (``media_relay`` in callway.toml) anchors
media at the edge through an ng media relay (``callway relay`` or
rtpengine), as Kamailio's ``rtpengine_manage()`` does: INVITE, UPDATE, ACK
with a body, BYE and CANCEL then skip the fast path (their SDP is rewritten by the
full path, :mod:`callway.app.balancer_tu`); the rest of a call stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from callway import __version__
from callway.admin import AdminServer, start_admin
from callway.app.admin_backends import BalancerBackend
from callway.app.alerts import AlertSender
from callway.app.balancer_console import balancer_commands
from callway.app.balancer_media import MediaRelayClient
from callway.app.balancer_tu import BRANCH_PREFIX, BalancerUser
from callway.app.balancer_workers import (
    WorkerLink,
    WorkerRole,
    call_id_owned_by,
    fork_workers,
    stop_workers,
)
from callway.app.control import ControlServer
from callway.app.runtime import tune_gc
from callway.balancer.algorithms import RequestFacts, SelectorState, select_destinations
from callway.balancer.fastpath import FastRelay
from callway.balancer.model import (
    Algorithm,
    DispatcherSet,
    ProbeSettings,
    ProbingMode,
    ReplyCodes,
)
from callway.balancer.probing import DestinationDown, DestinationUp, Prober
from callway.balancer.proxy import Identity, name_addr_uri, uri_address
from callway.config.dispatcher import load_dispatcher_list
from callway.config.errors import ConfigError
from callway.config.toml import CallwaySettings, load_settings
from callway.core.address import Address
from callway.sip.digest import parse_auth_header
from callway.sip.errors import ParseError
from callway.sip.message import Request
from callway.sip.transaction import (
    ClientTransactionKey,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionTimeout,
    new_branch,
)
from callway.sip.uri import SipURI, parse_uri
from callway.transport.stack import SipStack
from callway.transport.udp import UdpEndpoint

log = logging.getLogger("callway.balancer")
TIMER_TICK = 0.1  # seconds between checks of the proxy's failover timers
FAST_TICK = 0.05  # seconds between runs of the fast path's retransmission timers
OVERLOAD_LAG = 0.4  # seconds in the kernel's queue: new INVITEs get 503 (before T1, 0.5 s)
# Algorithms that hash a header besides the Call-ID (the request must be parsed).
HEADER_ALGORITHMS = frozenset(
    {Algorithm.HASH_FROM_URI, Algorithm.HASH_TO_URI, Algorithm.HASH_RURI, Algorithm.HASH_AUTH_USER}
)
STATS_EVERY = 10  # ticks between a worker's counters sent to the primary
READY_TIMEOUT = 10.0  # seconds the primary waits for its workers to bind
# Collector thresholds while serving: a relayed message allocates a few dozen objects, and
# with the default (700) the collector ran every few messages, scanning the transaction
# records each time (about 15 % of the CPU at a few thousand calls a second).
GC_THRESHOLDS = (10_000, 20, 50)
MEDIA_METHODS = (b"INVITE ", b"UPDATE ", b"BYE ", b"CANCEL ")


def carries_media(data: bytes) -> bool:
    """A request the media relay must see: INVITE, UPDATE, BYE, CANCEL, an ACK with a body.

    Their responses follow on their own: the fast path only knows the
    branches it relayed.
    """
    if data.startswith(MEDIA_METHODS):
        return True
    if not data.startswith(b"ACK "):
        return False
    end = data.find(b"\r\n\r\n")
    return end >= 0 and len(data) > end + 4


@dataclass(frozen=True, slots=True)
class Listen:
    """``udp:IP:PORT`` / ``tcp:IP:PORT`` (Kamailio's ``listen=``)."""

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """Parse Kamailio's listen syntax; ``udp`` when no protocol is given."""
        parts = text.split(":")
        if len(parts) == 2:
            parts = ["udp", *parts]
        if len(parts) != 3 or parts[0] not in ("udp", "tcp") or not parts[2].isdigit():
            raise ValueError(f"bad listen address {text!r} (expected udp:IP:PORT or tcp:IP:PORT)")
        return cls(parts[0], parts[1], int(parts[2]))


@dataclass(frozen=True, slots=True)
class BalancerSettings:
    """Everything ``callway balancer`` needs to start."""

    listens: tuple[Listen, ...]
    list_path: Path
    setid: int = 1
    algorithm: int = 9
    probe: ProbeSettings = field(default_factory=lambda: ProbeSettings(interval=10.0))
    advertise: str = ""
    alert_url: str = ""
    alert_secret: str = ""
    admin_listen: str = "127.0.0.1:8089"
    admin_token: str = ""
    state_dir: Path = field(default_factory=Path.cwd)
    workers: int = 1
    media_relay: str = ""  # udp:IP:PORT of an ng media relay; "" = media end to end


def balancer_settings(args: object) -> BalancerSettings:
    """Settings from ``-c DIR`` (callway.toml [balancer]) overridden by command-line flags."""
    config_dir = getattr(args, "config", None)
    toml = CallwaySettings()
    base = Path(config_dir).resolve() if config_dir else Path.cwd()
    if config_dir:
        path = base / "callway.toml"
        toml = load_settings(path if path.is_file() else None)
    b = toml.balancer
    listens = getattr(args, "listen", None) or list(b.listen)
    list_file = getattr(args, "list", None) or str(base / b.list_file)
    reply_codes = ReplyCodes.parse(b.ping_reply_codes) if b.ping_reply_codes else ReplyCodes()
    interval = getattr(args, "ping_interval", None)
    probe = ProbeSettings(
        interval=b.ping_interval if interval is None else interval,
        probing_threshold=b.probing_threshold,
        inactive_threshold=b.inactive_threshold,
        reply_codes=reply_codes,
        probing_mode=ProbingMode(b.probing_mode),
        timeout=b.ping_timeout,
    )
    setid = getattr(args, "set", None)
    algorithm = getattr(args, "algorithm", None)
    workers = getattr(args, "workers", None)
    return BalancerSettings(
        listens=tuple(Listen.parse(text) for text in listens),
        list_path=Path(list_file),
        setid=b.set if setid is None else setid,
        algorithm=b.algorithm if algorithm is None else algorithm,
        probe=probe,
        advertise=getattr(args, "advertise", None) or b.advertise,
        alert_url=b.alert_url,
        alert_secret=b.alert_secret,
        admin_listen=toml.admin.listen if config_dir else "127.0.0.1:8089",
        admin_token=toml.admin.token,
        state_dir=base,
        workers=max(1, workers or 1),
        media_relay=getattr(args, "media_relay", None) or b.media_relay,
    )


class DispatcherPicker:
    """The dispatcher as the proxy sees it: candidates for a request, failure reports."""

    def __init__(self, sets: dict[int, DispatcherSet], settings: BalancerSettings) -> None:
        self.settings = settings
        self.prober = Prober(sets, settings.probe, first_round=time.time())
        self.state = SelectorState(flags_of=self.prober.flags_of)
        self.rng = random.Random()
        self.algorithm = Algorithm.parse(settings.algorithm)
        #: Called with each failed destination's URI (a worker tells the primary).
        self.report_failure: Callable[[str], None] | None = None
        self._addresses: dict[str, tuple[str, Address]] = {}

    def candidates(self, request: Request, now: float) -> list[tuple[str, Address]]:
        """Destinations to try, first the chosen one (ds_select_dst + ds_next_dst)."""
        dset = self.prober.sets.get(self.settings.setid)
        if dset is None:
            return []
        algorithm = self.algorithm
        if request.method == "REGISTER":
            algorithm = Algorithm.HASH_TO_URI  # one user's registrations stay on one node
        chosen = select_destinations(
            dset, algorithm, _facts(request, algorithm), self.state, now, self.rng
        )
        out = []
        for dest in chosen:
            uri = parse_uri(dest.uri)
            if isinstance(uri, SipURI):
                out.append((dest.uri, uri_address(uri)))
        return out

    def candidates_for_call(
        self, call_id: str, request: Callable[[], Request], now: float
    ) -> list[tuple[str, Address]]:
        """:meth:`candidates` for an INVITE, parsed only if the algorithm hashes a header."""
        if self.algorithm in HEADER_ALGORITHMS:
            return self.candidates(request(), now)
        dset = self.prober.sets.get(self.settings.setid)
        if dset is None:
            return []
        facts = RequestFacts(call_id)
        chosen = select_destinations(dset, self.algorithm, facts, self.state, now, self.rng)
        found = [self._address(dest.uri) for dest in chosen]
        return [(uri, address) for uri, address in found if address.port]

    def _address(self, uri_text: str) -> tuple[str, Address]:
        """A destination URI and where it leads (port 0: not a SIP URI); cached."""
        known = self._addresses.get(uri_text)
        if known is None:
            uri = parse_uri(uri_text)
            address = uri_address(uri) if isinstance(uri, SipURI) else Address("udp", "", 0)
            known = self._addresses[uri_text] = (uri_text, address)
        return known

    def failed(self, uri: str, now: float) -> None:
        """A relayed request timed out or got 5xx: mark the node trying/probing."""
        self.prober.on_request_failure(uri, now)
        if self.report_failure is not None:
            self.report_failure(uri)

    def call_started(self, uri: str, call_id: str) -> None:
        """Count the call against its node (algorithm 10)."""
        dset = self.prober.sets.get(self.settings.setid)
        dest = dset.find(uri) if dset is not None else None
        if dest is not None:
            self.state.call_load.call_started(dest.load_key, call_id, time.time())

    def call_ended(self, call_id: str) -> None:
        """The call's BYE went through."""
        self.state.call_load.call_ended(call_id)

    def is_destination(self, source: Address) -> bool:
        """Kamailio's ``ds_is_from_list()``: the request comes from one of the nodes."""
        for dset in self.prober.sets.values():
            for dest in dset.destinations:
                if dest.host == source.host and (dest.port or 5060) == source.port:
                    return True
        return False


def _facts(request: Request, algorithm: Algorithm) -> RequestFacts:
    """What ``algorithm`` hashes, and only that (the others need no header parsing)."""
    try:
        call_id = request.call_id
        if algorithm == Algorithm.HASH_FROM_URI:
            return RequestFacts(call_id, from_uri=name_addr_uri(request.get("from") or ""))
        if algorithm == Algorithm.HASH_TO_URI:
            return RequestFacts(call_id, to_uri=name_addr_uri(request.get("to") or ""))
        if algorithm == Algorithm.HASH_RURI:
            uri = request.uri
            return RequestFacts(
                call_id, ruri_user=(uri.user or "") if isinstance(uri, SipURI) else ""
            )
        if algorithm == Algorithm.HASH_AUTH_USER:
            return RequestFacts(call_id, auth_user=_auth_user(request))
        return RequestFacts(call_id)
    except (ParseError, ValueError):
        return RequestFacts(call_id=request.get("call-id") or "")


def _auth_user(request: Request) -> str:
    for value in request.get_all("authorization") + request.get_all("proxy-authorization"):
        return parse_auth_header(value).params.get("username", "")
    return ""


class BalancerApp:
    """A running balancer node (one worker process of it with ``--workers``)."""

    def __init__(self, settings: BalancerSettings) -> None:
        if not settings.listens:
            raise ConfigError("callway.toml", 0, "the balancer needs at least one listen address")
        if settings.workers > 1 and any(lst.port == 0 for lst in settings.listens):
            raise ConfigError("callway.toml", 0, "--workers needs fixed listen ports")
        self.settings = settings
        self.sets = load_dispatcher_list(settings.list_path)
        if settings.setid not in self.sets:
            log.warning("set %d is not in %s: every call gets 404", settings.setid,
                        settings.list_path)  # fmt: skip
        self.picker = DispatcherPicker(self.sets, settings)
        first = settings.listens[0]
        host = settings.advertise or first.host
        aliases = frozenset({lst.host for lst in settings.listens} | {host})
        self.identity = Identity(host, first.port, first.transport, aliases)
        self.stack = SipStack()
        self.proxy = BalancerUser(
            self.stack, self.identity, self.picker, clock=time.time,
            server_header=f"callway balancer {__version__}",
        )  # fmt: skip
        self.proxy.overloaded = self._overloaded
        self.fast = FastRelay(
            self.identity, self.picker, self.stack.send_bytes, branch_prefix=BRANCH_PREFIX,
            first_response_timeout=self.proxy.first_response_timeout, stats=self.proxy.stats,
        )  # fmt: skip
        self.fast.overloaded = self._overloaded
        self.media: MediaRelayClient | None = None
        if settings.media_relay:
            self.media = MediaRelayClient(settings.media_relay, self.proxy.stats)  # ValueError
            self.proxy.media = self.media
        self.alerts = AlertSender(settings.alert_url, settings.alert_secret)
        self._probes: dict[ClientTransactionKey, str] = {}
        self.admin: AdminServer | None = None
        self.control: ControlServer | None = None
        self.stack.tu = self
        self.started = time.time()
        self.role = WorkerRole()
        self.link: WorkerLink | None = None
        self._shared: list[UdpEndpoint] = []
        self.private: UdpEndpoint | None = None
        self._worker_stats: dict[int, dict[str, int]] = {}
        self._ready: set[int] = set()
        self._all_ready = asyncio.Event()
        self._synced = -1
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def fork_workers(self) -> None:
        """With ``settings.workers`` > 1: fork the workers (before the event loop starts)."""
        self.role = fork_workers(self.settings.workers)
        if not self.role.primary:
            self.picker.prober.ping_active = False  # the primary probes for everyone

    # -- TU: probe answers go to the prober, the rest to the proxy ---------------------------

    def on_datagram(self, data: bytes, source: Address) -> None:
        """One datagram: the fast path relays it, or the full SIP stack takes it."""
        media = self.media is not None and carries_media(data)  # its SDP is rewritten there
        if media or not self.fast.receive(data, source, time.time()):
            self.stack.on_data(data, source)

    def handle_event(self, event: TransactionEvent, now: float) -> None:
        """Route one transaction event."""
        if isinstance(event, RequestReceived) and event.request.method == "INVITE":
            self.fast.note_slow_invite(event.request.via.branch, now)
        if isinstance(event, ResponseReceived) and event.key in self._probes:
            if event.response.status >= 200:
                uri = self._probes.pop(event.key)
                self.picker.prober.on_reply(uri, event.response.status, now)
            return
        if isinstance(event, TransactionTimeout) and event.key in self._probes:
            self.picker.prober.on_timeout(self._probes.pop(event.key), now)
            return
        self.proxy.handle_event(event, now)

    def _overloaded(self) -> bool:
        """The loop is behind: datagrams wait too long in the kernel's queue."""
        return any(endpoint.lag > OVERLOAD_LAG for endpoint in self._shared)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listen address and start probing."""
        loop = asyncio.get_running_loop()
        role = self.role
        if role.count > 1:
            self.link = WorkerLink(role, self.on_datagram, self._on_control)
            self.link.start(loop)
            if not role.primary:
                self.picker.report_failure = self._report_failure
        bound = await self._bind()
        if self.media is not None:
            await self.media.start()
        for endpoint in self.stack.udp:
            if endpoint.receiver == self.stack.on_data:
                endpoint.receiver = self.on_datagram
            endpoint.greedy = True  # datagrams come in bursts: read all that wait
        self.stack.start(loop)
        self._tasks.append(loop.create_task(self._proxy_timer_loop()))
        self._tasks.append(loop.create_task(self._fast_timer_loop()))
        if not role.primary:
            assert self.link is not None
            self.link.send_control(0, {"ready": role.index})
            log.info("callway balancer worker %d of %d (pid %d) serving %s", role.index,
                     role.count, os.getpid(), " ".join(bound))  # fmt: skip
            return
        self._tasks.append(loop.create_task(self._probe_loop()))
        await self._start_operations()
        if role.count > 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_ready.wait(), READY_TIMEOUT)
        log.info("callway balancer ready: %s (set %d, algorithm %d, %d worker(s))",
                 " ".join(bound), self.settings.setid, self.settings.algorithm,
                 role.count)  # fmt: skip

    async def _bind(self) -> list[str]:
        shared = self.role.count > 1
        bound = []
        for listen in self.settings.listens:
            if listen.transport == "udp":
                endpoint = self.stack.add_udp(listen.host, listen.port, reuse_port=shared)
                if self.link is not None:
                    endpoint.receiver = self.link.route
                self._shared.append(endpoint)
                bound.append(f"udp:{listen.host}:{endpoint.port}")
            elif self.role.primary:  # a stream stays with the process that accepted it
                server = await self.stack.add_tcp(listen.host, listen.port)
                bound.append(f"tcp:{listen.host}:{server.port}")
        if shared and self._shared:
            self._bind_private(self._shared[0])
        return bound

    def _bind_private(self, shared: UdpEndpoint) -> None:
        """A worker's own port: its requests leave from it, and their answers come back to it."""
        host = self.identity.host if shared.wildcard else shared.host
        self.private = self.stack.add_udp(shared.host, 0)
        self.identity = dataclasses.replace(self.identity, via_port=self.private.port)
        self.proxy.me = self.identity
        self.proxy.outbound_local = (host, self.private.port)
        self.fast.set_identity(self.identity)
        self.fast.outbound_local = self.proxy.outbound_local

    async def _start_operations(self) -> None:
        """The primary's console socket and admin API."""
        self.control = ControlServer(
            self.settings.state_dir / "callway.ctl", balancer_commands(self)
        )
        try:
            await self.control.start()
        except OSError as exc:
            log.warning("no console socket: %s", exc)
            self.control = None
        try:
            self.admin = await start_admin(
                BalancerBackend(self), self.settings.admin_listen, self.settings.admin_token,
                self.settings.state_dir,
            )  # fmt: skip
        except OSError as exc:
            log.warning("admin API not started on %s: %s", self.settings.admin_listen, exc)

    async def _probe_loop(self) -> None:
        prober = self.picker.prober
        while True:
            now = time.time()
            prober.handle_timer(now)
            for dest in prober.probes_to_send():
                self._send_probe(dest.uri)
            while (event := prober.next_event()) is not None:
                self._announce(event)
            self._sync_states()
            deadline = prober.get_timer()
            delay = 1.0 if deadline is None else min(1.0, max(0.01, deadline - time.time()))
            await asyncio.sleep(delay)

    async def _fast_timer_loop(self) -> None:
        """Drive the fast path's retransmissions and timeouts."""
        fast = self.fast
        while True:
            await asyncio.sleep(FAST_TICK)
            deadline = fast.get_timer()
            if deadline is not None and deadline <= time.time():
                fast.handle_timer(time.time())

    async def _proxy_timer_loop(self) -> None:
        """Drive the proxy's first-response timeouts (failover to the next node); worker chores."""
        ticks = 0
        while True:
            await asyncio.sleep(TIMER_TICK)
            deadline = self.proxy.get_timer()
            if deadline is not None and deadline <= time.time():
                self.proxy.handle_timer(time.time())
                self.stack.pump()
            ticks += 1
            if self.role.primary:
                self._sync_states()
            else:
                self._worker_chores(ticks)

    # -- workers -------------------------------------------------------------------------------

    def _sync_states(self) -> None:
        """The primary sends the destination states to the workers when they changed."""
        prober = self.picker.prober
        if self.link is None or prober.changes == self._synced:
            return
        self._synced = prober.changes
        self.link.broadcast({"states": prober.snapshot()})

    def _worker_chores(self, ticks: int) -> None:
        if self.role.orphaned:
            log.warning("worker %d: the primary is gone, stopping", self.role.index)
            self._stopped.set()
        while self.picker.prober.next_event() is not None:
            pass  # only the primary announces up/down
        if ticks % STATS_EVERY == 0 and self.link is not None:
            self.link.send_control(0, {"worker": self.role.index, "stats": self.counters()})

    def _report_failure(self, uri: str) -> None:
        if self.link is not None:
            self.link.send_control(0, {"failed": uri})

    def _on_control(self, payload: dict[str, object]) -> None:
        """A control message from another worker."""
        prober = self.picker.prober
        if "states" in payload:
            states = payload["states"]
            if isinstance(states, list):
                prober.apply_snapshot(states)
        elif "failed" in payload:
            prober.on_request_failure(str(payload["failed"]), time.time())
        elif "reload" in payload:
            self.reload()
        elif "stats" in payload and isinstance(payload["stats"], dict):
            self._worker_stats[int(str(payload.get("worker", -1)))] = payload["stats"]
        elif "ready" in payload:
            self._ready.add(int(str(payload["ready"])))
            self._synced = -1  # send it the current states
            if len(self._ready) >= self.role.count - 1:
                self._all_ready.set()

    def counters(self) -> dict[str, int]:
        """This process's proxy counters plus overload and hand-off figures."""
        out = dict(self.proxy.stats)
        out["lag_ms"] = int(max((e.lag for e in self._shared), default=0.0) * 1000)
        if self.link is not None:
            out["handed_off"] = self.link.handed_off
            out["channel_drops"] = self.link.dropped
        return out

    def worker_stats(self) -> dict[int, dict[str, int]]:
        """Counters by worker index (the others' as last reported, within a second)."""
        return {0: self.counters(), **self._worker_stats} if self.role.primary else {
            self.role.index: self.counters()}  # fmt: skip

    def set_destination_state(self, letters: str, setid: int, uri: str) -> int:
        """Kamailio's ``dispatcher.set_state`` (``uri`` may be ``all``); workers follow at once."""
        changed = self.picker.prober.set_state(uri, letters, time.time(), setid)
        self._sync_states()
        return changed

    def _send_probe(self, dest_uri: str) -> None:
        uri = parse_uri(dest_uri)
        if not isinstance(uri, SipURI):
            return
        me = self.identity
        settings = self.settings.probe
        dest = uri_address(uri)
        host, port = me.host, me.port
        source = self._probe_source()
        if self.private is not None and source is None:
            source = self.proxy.outbound_local
        if source is not None:
            host, port = source
            dest = dataclasses.replace(dest, local=source)
        via = f"SIP/2.0/{me.transport.upper()} {host}:{port};branch={new_branch()};rport"
        request = Request(
            settings.method,
            str(uri),
            [
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", f"<{settings.ping_from}>;tag={secrets.token_hex(4)}"),
                ("To", f"<{uri}>"),
                ("Call-ID", call_id_owned_by(self.role.index, self.role.count, me.host)),
                ("CSeq", f"1 {settings.method}"),
                ("User-Agent", f"callway balancer {__version__}"),
            ],
        )
        key = self.stack.send_request(request, dest)
        assert isinstance(key, ClientTransactionKey)
        self._probes[key] = dest_uri

    def _probe_source(self) -> tuple[str, int] | None:
        """With ``--advertise VIP``: probe from this node's own listen address, if it has one.

        A keepalived backup cannot send from a VIP it does not hold (the kernel
        says ENETUNREACH), and answers to probes sent from the VIP would reach
        the master: probing from its own address, each node of the pair knows
        the destination states by itself, ready for a failover.
        """
        vip = self.settings.advertise
        if not vip:
            return None
        for endpoint in self.stack.udp:
            host = endpoint.host
            if host != vip and not endpoint.wildcard and not host.startswith("127."):
                return host, endpoint.port
        return None

    def _announce(self, event: DestinationUp | DestinationDown) -> None:
        if isinstance(event, DestinationDown):
            log.warning("destination %s is DOWN (%s)", event.uri, event.cause)
        else:
            log.warning("destination %s is UP again", event.uri)
        self.alerts.send(event)

    def reload(self) -> bool:
        """Re-read dispatcher.list; keep the old list when the new one is broken."""
        try:
            sets = load_dispatcher_list(self.settings.list_path)
        except (ConfigError, OSError) as exc:
            log.error("reload failed, keeping the running list: %s", exc)
            return False
        self.picker.prober.reload(sets)
        log.info("dispatcher list reloaded: %d sets", len(sets))
        if self.link is not None and self.role.primary:
            self.link.broadcast({"reload": 1})
        return True

    async def stop(self) -> None:
        """Close sockets and tasks (the primary stops its workers first)."""
        if self.role.children:
            await stop_workers(self.role)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.admin is not None:
            await self.admin.close()
        if self.control is not None:
            await self.control.close()
        if self.link is not None:
            self.link.close()
        if self.media is not None:
            self.media.close()
        await self.stack.close()
        await self.alerts.close()

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM; SIGHUP reloads dispatcher.list."""
        loop = asyncio.get_running_loop()
        await self.start()
        tune_gc(GC_THRESHOLDS)  # freeze what start-up built; collect less often
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self._stopped.wait()
        await self.stop()
