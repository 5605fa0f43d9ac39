"""``callway demo``: the seed's system in one process, on embedded defaults.

* the PBX with the seed's ``pjsip.conf`` and ``extensions.conf`` (8005/8006,
  UDP 0.0.0.0:5061), its console socket and admin page on localhost;
* a balancer on UDP 5060 in front of it (``dispatcher.list``: the PBX,
  weight 100, algorithm 9), so phones may use either port;
* a STUN server on UDP 3478.

Anything that cannot bind (a port in use) is reported and skipped; the PBX
itself must start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from callway.app.balancer import BalancerApp, BalancerSettings, Listen
from callway.app.pbx import PbxApp, PbxSettings
from callway.balancer.model import ProbeSettings, ProbingMode
from callway.config.defaults import DEMO_PJSIP_CONF
from callway.transport.stun import StunServer

log = logging.getLogger("callway.demo")


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """Ports of the demo (0 disables the balancer or STUN)."""

    state_dir: Path
    pbx_port: int = 5061
    balancer_port: int = 5060
    stun_port: int = 3478


def primary_address() -> str:
    """This machine's address for phones (no packet is sent: UDP connect only routes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def pjsip_text(port: int) -> str:
    """The seed's pjsip.conf, on another port if asked."""
    return DEMO_PJSIP_CONF.replace("bind=0.0.0.0:5061", f"bind=0.0.0.0:{port}")


def banner(
    settings: DemoSettings, address: str, balancer: bool, stun: bool, admin_url: str | None = None
) -> str:
    """How to use the demo; ``admin_url`` is None when the admin API did not start."""
    lines = [
        "callway demo: the seed's PBX (pjsip.conf/extensions.conf unchanged) is running.",
        f"  Register softphones to {address}:{settings.pbx_port} (UDP):",
        "    user 8005 password 8005, or user 8006 password 8006 (realm asterisk);",
        "    then call 8006 from 8005: both hear each other.",
        f"  e.g. baresip: <sip:8005@{address}:{settings.pbx_port}>;auth_pass=8005",
    ]
    if balancer:
        lines.append(f"  Or through the load balancer: {address}:{settings.balancer_port}")
    if stun:
        lines.append(f"  STUN server: {address}:{settings.stun_port}")
    lines += [
        f"  Alive? callway probe sip:s@127.0.0.1:{settings.pbx_port}",
        f"  Console: callway console --state-dir {settings.state_dir}",
        (
            f"  Admin page: {admin_url}/ (token in {settings.state_dir}/admin.token)"
            if admin_url
            else "  Admin page: not started (its address is in use; see the log above)"
        ),
        "  Ctrl-C stops.",
    ]
    return "\n".join(lines)


class Demo:
    """PBX + balancer + STUN in one event loop."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.pbx = PbxApp(PbxSettings(None, settings.state_dir, pjsip_text(settings.pbx_port)))
        self.balancer: BalancerApp | None = None
        self.stun: StunServer | None = None
        self.address = primary_address()

    def _balancer(self) -> BalancerApp:
        settings = self.settings
        lb_dir = settings.state_dir / "balancer"
        lb_dir.mkdir(parents=True, exist_ok=True)
        listed = lb_dir / "dispatcher.list"
        listed.write_text(f"1 sip:127.0.0.1:{settings.pbx_port} 0 0 weight=100\n")
        return BalancerApp(
            BalancerSettings(
                listens=(Listen("udp", "0.0.0.0", settings.balancer_port),),
                list_path=listed,
                probe=ProbeSettings(interval=5.0, probing_mode=ProbingMode.ALL),
                advertise=self.address,
                admin_listen="127.0.0.1:8089",
                state_dir=lb_dir,
            )
        )

    async def start(self) -> None:
        """The PBX must start; the rest is best effort."""
        await self.pbx.start()
        if self.settings.balancer_port:
            try:
                self.balancer = self._balancer()
                await self.balancer.start()
            except OSError as exc:
                log.warning("demo balancer not started: %s", exc)
                self.balancer = None
        if self.settings.stun_port:
            try:
                self.stun = StunServer(("0.0.0.0", self.settings.stun_port))
                await self.stun.start()
            except OSError as exc:
                log.warning("demo STUN server not started: %s", exc)
                self.stun = None

    async def stop(self) -> None:
        """Stop everything that started."""
        if self.stun is not None:
            with contextlib.suppress(Exception):
                self.stun.close()
        if self.balancer is not None:
            await self.balancer.stop()
        await self.pbx.stop()

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM."""
        loop = asyncio.get_running_loop()
        await self.start()
        admin = self.pbx.admin.url if self.pbx.admin is not None else None
        print(banner(self.settings, self.address, self.balancer is not None,
                     self.stun is not None, admin), flush=True)  # fmt: skip
        stopped = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        loop.add_signal_handler(signal.SIGHUP, self.pbx.reload)
        await stopped.wait()
        await self.stop()
