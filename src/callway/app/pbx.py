"""Composition root of the PBX: config files -> sockets, registrar, store.

``callway pbx -c DIR`` reads ``DIR/pjsip.conf`` (Asterisk syntax) and keeps
its registrations in ``DIR/callway.sqlite`` (or ``--state-dir``), so they
survive a restart.  SIGHUP reloads the configuration; a broken file is
reported with file and line and the running configuration stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callway import __version__
from callway.admin import AdminServer, start_admin
from callway.app.admin_backends import PbxBackend
from callway.app.b2bua.callback import CallbackService
from callway.app.b2bua.dial import static_bindings
from callway.app.b2bua.manager import CallManager
from callway.app.b2bua.service import CallService, cdr_writer
from callway.app.control import ControlServer
from callway.app.keepalive import Keepalives
from callway.app.nat import NatPolicy
from callway.app.notify import WebhookNotifier
from callway.app.ops_alerts import OpsAlertSender
from callway.app.pbx_console import pbx_commands
from callway.app.pbx_tu import PbxTransactionUser
from callway.app.runtime import FullCollector, MemoryProbe, MemoryTrimmer
from callway.config.defaults import DEMO_EXTENSIONS_CONF
from callway.config.errors import ConfigError
from callway.config.extensions import load_extensions, parse_extensions
from callway.config.pjsip import load_pjsip, parse_pjsip
from callway.config.toml import CallwaySettings, load_settings
from callway.media.ports import PortPool
from callway.ops.alerts import AlertEngine
from callway.ops.config import build_tracer
from callway.pbx.auth import Authenticator
from callway.pbx.core import PbxCore
from callway.pbx.dialplan import validate_dialplan
from callway.pbx.dialplan_model import Dialplan
from callway.pbx.location import Binding, Location
from callway.pbx.model import Network, PjsipConfig
from callway.pbx.qualify import ContactStatus
from callway.pbx.registrar import Registrar
from callway.pbx.registrar_fast import FastRegistrar
from callway.sip.transaction import TransactionConfig
from callway.store.cdr import SqliteCdrStore
from callway.store.redis_location import RedisReplicator, ReplicatedLocation
from callway.store.redis_state import RedisState
from callway.store.sqlite import SqliteLocationStore
from callway.transport.guard import build_guard
from callway.transport.stack import SipStack
from callway.transport.tcp import StreamLimits
from callway.transport.tls import TlsConfigError, client_context, load_certificate, server_context
from callway.transport.tos import set_tos

log = logging.getLogger("callway.pbx")

TICK = 0.5


#: Seconds the identify sections' host names get to resolve, all together, at (re)load.
RESOLVE_DEADLINE = 3.0

Resolver = Callable[..., list[tuple[Any, ...]]]


def resolve_identify_hosts(
    config: PjsipConfig,
    *,
    deadline: float = RESOLVE_DEADLINE,
    getaddrinfo: Resolver = socket.getaddrinfo,
) -> dict[str, tuple[Network, ...]]:
    """The addresses of the host names in identify sections' ``match=`` (resolved at load).

    As res_pjsip_endpoint_identifier_ip, a name is looked up when the
    configuration is (re)loaded; one that does not resolve matches nothing.
    The names are looked up side by side, and the whole lookup stops after
    ``deadline`` seconds: a slow resolver cannot stall a reload for longer
    (the names still unresolved then match nothing, with a warning).
    """
    owners: dict[str, str] = {}
    for identify in config.identifies.values():
        for host in identify.match_hosts:
            owners.setdefault(host, identify.name)
    if not owners:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(8, len(owners)), thread_name_prefix="identify")
    lookups = {
        host: pool.submit(getaddrinfo, host, None, type=socket.SOCK_DGRAM) for host in owners
    }
    wait(lookups.values(), timeout=deadline)
    pool.shutdown(wait=False, cancel_futures=True)
    found: dict[str, tuple[Network, ...]] = {}
    for host, lookup in lookups.items():
        found[host] = ()
        if not lookup.done():
            log.warning("identify %s: %s did not resolve within %g s", owners[host], host,
                        deadline)  # fmt: skip
            continue
        try:
            infos = lookup.result()
        except (OSError, UnicodeError) as exc:  # UnicodeError: a label over 63 characters
            log.warning("identify %s: cannot resolve %s: %s", owners[host], host, exc)
            continue
        networks = {ipaddress.ip_network(info[4][0]) for info in infos}
        found[host] = tuple(sorted(networks, key=str))
    return found


def transaction_timers(config: PjsipConfig) -> TransactionConfig:
    """RFC 3261 T1 and Timer B from pjsip.conf's ``type=system`` (ms, as Asterisk's)."""
    system = config.system
    t1 = system.timer_t1 / 1000
    timer_b = system.timer_b / 1000
    return TransactionConfig(t1=t1, timer_b=None if timer_b == 64 * t1 else timer_b)


@dataclass(frozen=True, slots=True)
class PbxSettings:
    """Where the PBX finds its config and keeps its state."""

    config_dir: Path | None
    state_dir: Path
    pjsip_text: str | None = None  # built-in config (the demo) instead of DIR/pjsip.conf
    extensions_text: str | None = None  # built-in dialplan (the demo)


def load_config(settings: PbxSettings) -> PjsipConfig:
    """Read and translate pjsip.conf; raise ConfigError naming file and line."""
    if settings.pjsip_text is not None:
        config = parse_pjsip(settings.pjsip_text, "pjsip.conf (built-in demo)")
    else:
        assert settings.config_dir is not None
        path = settings.config_dir / "pjsip.conf"
        if not path.is_file():
            raise ConfigError(str(path), 0, "file not found")
        config = load_pjsip(path)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config


def load_dialplan(settings: PbxSettings) -> Dialplan:
    """Read extensions.conf (the demo's built-in one when there is no file)."""
    if settings.extensions_text is not None or settings.config_dir is None:
        text = settings.extensions_text or DEMO_EXTENSIONS_CONF
        dialplan = parse_extensions(text, "extensions.conf (built-in demo)")
    else:
        path = settings.config_dir / "extensions.conf"
        if not path.is_file():
            log.warning("%s not found: no calls can be placed", path)
            return parse_extensions("", str(path))
        dialplan = load_extensions(path)
    for warning in dialplan.warnings:
        log.warning("%s", warning)
    problems = validate_dialplan(dialplan)
    if problems:
        first = problems[0]
        raise ConfigError(first.filename, first.line, first.problem)
    return dialplan


def load_toml(settings: PbxSettings) -> CallwaySettings:
    """callway.toml beside the other files (all defaults when absent)."""
    path = settings.config_dir / "callway.toml" if settings.config_dir else None
    return load_settings(path if path is not None and path.is_file() else None)


class PbxApp:
    """A running PBX node."""

    def __init__(self, settings: PbxSettings) -> None:
        self.settings = settings
        self.config = load_config(settings)
        self.dialplan = load_dialplan(settings)
        self.options = load_toml(settings)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = SqliteLocationStore(settings.state_dir / "callway.sqlite")
        self.replicator: RedisReplicator | None = None
        self.cluster: RedisState | None = None  # dialog and room ownership (Redis store)
        if self.options.store.url == "sqlite":
            self.location = Location(self.store)
            restored = self.location.restore(time.time())
            if restored:
                log.info("restored %d registrations from %s", restored, self.store.path)
        else:
            node = self.options.store.node_id or f"{socket.gethostname()}:{os.getpid()}"
            self.replicator = RedisReplicator(self.options.store.url, node,
                                              self.options.store.prefix)  # fmt: skip
            self.location = ReplicatedLocation(self.replicator)
            self.cluster = RedisState(self.options.store.url, node, self.options.store.prefix)
        self.auth = Authenticator(self.config, algorithms=self.options.auth.algorithms)
        self.auth.resolved_hosts = resolve_identify_hosts(self.config)
        self.registrar = Registrar(self.config, self.location, self.auth)
        self.stack = SipStack(timers=transaction_timers(self.config))
        self.tracer = build_tracer(
            self.options.trace, base=settings.config_dir, local_for=self.stack.default_local
        )
        self.stack.trace = self.tracer
        sec = self.options.security
        self.stack.max_transactions = sec.max_transactions
        self.stack.stream_limits = StreamLimits(
            sec.tcp_max_per_ip, sec.tcp_max_total, sec.tcp_partial_timeout, sec.tcp_idle_timeout
        )
        self.stack.guard = build_guard(
            sec.pike_limit,
            sec.pike_window,
            sec.pike_ban,
            sec.trusted,
            sec.drop_scanners,
            sec.scanner_agents,
        )
        user_agent = f"callway {__version__}"
        self.core = PbxCore(self.registrar, self.stack.send_response, user_agent=user_agent)
        # The usual REGISTER is answered from its bytes; the rest takes the ordinary path.
        self.stack.fast_path = FastRegistrar(self.registrar, self.stack.transactions, user_agent)
        self.manager = CallManager(self.stack, user_agent=user_agent)
        self.manager.nat = NatPolicy.from_config(self.config)
        self.keepalives = Keepalives(
            self.stack, self.manager, aor_of=lambda name: self.config.aors.get(name),
            lookup=self._contact, clock=time.time,
            keep_alive_interval=lambda: self.config.global_.keep_alive_interval,
        )  # fmt: skip
        self.registrar.listeners.append(self.keepalives.on_binding)
        rtp = self.options.rtp
        self.pool = PortPool(rtp.bind, rtp.start, rtp.end)
        self.calls = CallService(
            config=self.config,
            dialplan=self.dialplan,
            location=self.location,
            auth=self.auth,
            manager=self.manager,
            pool=self.pool,
        )
        self.calls.max_calls = self.options.security.max_calls
        self.cdr = SqliteCdrStore(settings.state_dir / "callway.sqlite")
        self.calls.on_record.append(cdr_writer(self.cdr))
        qualifier = self.keepalives.qualifier
        self.calls.reachable = lambda aor, uri: (
            qualifier.status(aor, uri)[0] is not ContactStatus.UNREACHABLE
        )
        callback = self.options.callback
        self.calls.callback = CallbackService(
            callback, WebhookNotifier(callback.webhook_url, callback.webhook_secret), self.location
        )
        self.registrar.listeners.append(self.calls.callback.on_binding)
        self.calls.cluster = self.cluster
        self.alert_engine = AlertEngine(uri=f"pbx:{socket.gethostname()}")
        self.alert_sender = OpsAlertSender(self.options.alerts.url, self.options.alerts.secret)
        self.calls.on_record.append(
            lambda record: self.alert_engine.record_cdr(record.disposition, record.end)
        )
        self.stack.tu = PbxTransactionUser(
            self.core, self.calls, self.manager, self.stack.transactions
        )
        self.tls_contexts: dict[str, ssl.SSLContext] = {}
        self.control: ControlServer | None = None
        self.admin: AdminServer | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.trimmer = MemoryTrimmer()  # hands freed heap back once a burst is over
        self.collector = FullCollector()  # cycles do not wait for the raised thresholds
        self.memory_probe = MemoryProbe()  # SIGUSR2

    async def start(self) -> None:
        """Bind every ``type=transport`` and start serving."""
        loop = asyncio.get_running_loop()
        bound = []
        for transport in self.config.transports.values():
            if transport.protocol == "udp":
                endpoint = self.stack.add_udp(transport.bind_host, transport.bind_port)
                endpoint.greedy = True  # REGISTER storms, retransmission bursts: read all
                if transport.tos:
                    set_tos(endpoint.sock, transport.tos)
                bound.append(f"udp:{transport.bind_host}:{endpoint.port}")
            elif transport.protocol == "tcp":
                server = await self.stack.add_tcp(transport.bind_host, transport.bind_port)
                server.mark(transport.tos)
                bound.append(f"tcp:{transport.bind_host}:{server.port}")
            elif transport.protocol == "tls":
                context = server_context(transport)
                self.tls_contexts[transport.name] = context
                server = await self.stack.add_tcp(
                    transport.bind_host,
                    transport.bind_port,
                    transport_name="tls",
                    ssl_context=context,
                    client_ssl_context=client_context(transport),
                )
                server.mark(transport.tos)
                bound.append(f"tls:{transport.bind_host}:{server.port}")
            else:
                log.warning("transport %s: protocol %s not served yet", transport.name,
                            transport.protocol)  # fmt: skip
        if self.replicator is not None and isinstance(self.location, ReplicatedLocation):
            await self.replicator.start(self.location)
        if self.cluster is not None:
            udp = [b for b in bound if b.startswith("udp:")] or bound
            if udp:  # this node's address, for redirects to the rooms it holds
                _proto, host, port = udp[0].split(":", 2)
                self.cluster.uri = f"sip:{host}:{port}"
            await self.cluster.start(live_rooms=lambda: self.calls.rooms.rooms.keys())
        self.stack.start(loop)
        for binding in self.location.all(time.time()):  # restored: qualify them too
            self.keepalives.on_binding(binding)
        self._qualify_static()
        self._tick_task = loop.create_task(self._tick())
        self.control = ControlServer(
            self.settings.state_dir / "callway.ctl", pbx_commands(self)
        )
        try:
            await self.control.start()
        except OSError as exc:
            log.warning("no console socket: %s", exc)
            self.control = None
        admin = self.options.admin
        try:
            self.admin = await start_admin(
                PbxBackend(self), admin.listen, admin.token, self.settings.state_dir
            )
        except OSError as exc:
            log.warning("admin API not started on %s: %s", admin.listen, exc)
        log.info("callway pbx ready: %s", " ".join(bound))

    def _alerts(self, now: float) -> None:
        """Feed the alert rules (registrations drop, call failure ratio) and post alerts."""
        self.alert_engine.observe_registrations(self.location.count(now), now)
        self.alert_engine.handle_timer(now)
        while (event := self.alert_engine.next_event()) is not None:
            self.alert_sender.send(event)

    async def _tick(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(TICK)
            now = time.time()
            ticks += 1
            if ticks % 10 == 0:
                self._alerts(now)
            for binding in self.location.expire(now):
                log.info("contact %s of %s expired", binding.uri, binding.aor)
            self.registrar.log_suppressed()
            self.calls.log_suppressed()
            self.keepalives.tick(now)
            try:
                self.store.flush()
                self.cdr.flush()
            except Exception:
                log.exception("cannot write %s", self.store.path)
            self.collector.maybe_collect(now)
            if ticks % 4 == 0:
                self._release_idle(now)

    def _release_idle(self, now: float) -> None:
        """Drop what a finished burst left behind, then give the freed heap back.

        Stale nonces and RTP pairs idle for 5 s are released (both would
        otherwise wait for the next registration or call).  The heap is
        trimmed only while no call is up: the trimmer's ``mallinfo2`` walks
        the whole malloc heap (10-30 ms measured), and the event loop, which
        relays the calls' RTP, would hold their packets that long, a gap a
        phone's 20 ms jitter buffer hears every 2 s.
        """
        self.auth.nonces.expire(now)
        self.pool.expire_idle()
        if not self.calls.channels:
            self.trimmer.maybe_trim()

    def _contact(self, aor: str, uri: str) -> Binding | None:
        """A registered contact, else a static ``contact=`` of the AOR (both are qualified)."""
        binding = self.location.get(aor, uri)
        if binding is not None:
            return binding
        for static in static_bindings(self.config.aors.get(aor)):
            if static.uri == uri:
                return static
        return None

    def _qualify_static(self) -> None:
        """Qualify the static contacts of AORs with ``qualify_frequency`` (a carrier's trunk).

        As res_pjsip: they are pinged like registered contacts, their state
        is logged and shown, and Dial skips one that is Unavail.  One dropped
        from the configuration is forgotten at its next ping.
        """
        for aor in self.config.aors.values():
            if aor.qualify_frequency > 0:
                for binding in static_bindings(aor):
                    self.keepalives.on_binding(binding)

    def reload(self) -> bool:
        """Re-read the config; keep the old one if the new one is broken."""
        try:
            config = load_config(self.settings)
            dialplan = load_dialplan(self.settings)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        if transaction_timers(config) != self.stack.transactions.config:
            log.warning("timer_t1/timer_b changed in pjsip.conf [system]: applied at restart")
        self.config = config
        self.auth.resolved_hosts = resolve_identify_hosts(config)
        self.auth.config = config
        self.registrar.config = config
        self.calls.config = config
        self.manager.nat = NatPolicy.from_config(config)
        self.calls.dialplan = dialplan
        self._qualify_static()
        for name, context in self.tls_contexts.items():
            transport = config.transports.get(name)
            if transport is None:
                continue
            try:
                load_certificate(context, transport)
                log.info("transport %s: certificate reloaded", name)
            except TlsConfigError as exc:
                log.error("%s (keeping the old certificate)", exc)
        log.info("configuration reloaded")
        return True

    def log_stats(self) -> None:
        """SIGUSR1: one ``stats:`` line of live counts (leak checks, operators)."""
        counts = self.calls.stats()
        counts["transactions"] = self.stack.transactions.active_transactions
        counts["resting_kib"] = self.stack.transactions.resting_bytes // 1024
        log.info("stats: %s", " ".join(f"{k}={v}" for k, v in counts.items()))

    def log_memory(self) -> None:
        """SIGUSR2: what the memory consists of (``memory:`` lines; leak hunting)."""
        for line in self.memory_probe.report():
            log.info("memory: %s", line)

    async def stop(self) -> None:
        """Close sockets and flush the store."""
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        if self.control is not None:
            await self.control.close()
        if self.admin is not None:
            await self.admin.close()
        if self.replicator is not None:
            await self.replicator.close()
        if self.cluster is not None:
            await self.cluster.close()
        self.calls.rooms.close_all()
        self.pool.close_idle()
        await self.stack.close()
        if self.tracer is not None:
            self.tracer.close()
        await self.alert_sender.close()
        self.store.close()
        self.cdr.close()

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        await self.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGUSR1, self.log_stats)
        loop.add_signal_handler(signal.SIGUSR2, self.log_memory)
        await self._stopped.wait()
        log.info("stopping")
        await self.stop()
