"""Run ``callway balancer`` (and sipp servers behind it) as real processes.

``run_balancer`` writes ``dispatcher.list`` and ``callway.toml`` under a
directory and runs ``python -m callway balancer -c DIR`` until the block ends,
like :mod:`tests.helpers.pbx_process` does for the PBX.  ``SippServer`` runs a
sipp scenario in the background (a UAS node or a registrar) and counts the
lines its ``<log>`` actions wrote, so a test can tell which node got which call.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.helpers.managed import ManagedProcess, StartError, running
from tests.helpers.peers import SCENARIOS
from tests.helpers.ports import free_port_pair_block, free_sip_port

READY_MARKER = "callway balancer ready"


@dataclass(frozen=True, slots=True)
class Node:
    """One ``dispatcher.list`` line: ``setid uri flags priority attrs``."""

    uri: str
    weight: int = 50
    setid: int = 1
    flags: int = 0
    priority: int = 0
    attrs: str = ""

    def line(self) -> str:
        attrs = ";".join(
            a for a in (f"weight={self.weight}" if self.weight else "", self.attrs) if a
        )
        return f"{self.setid} {self.uri} {self.flags} {self.priority} {attrs}".rstrip()


def dispatcher_list(nodes: Sequence[Node]) -> str:
    """The text of a ``dispatcher.list`` (Kamailio's format)."""
    return "# setid destination flags priority attributes\n" + "".join(
        f"{node.line()}\n" for node in nodes
    )


def balancer_toml(
    port: int,
    *,
    algorithm: int = 9,
    ping_interval: float = 1.0,
    ping_timeout: float = 0.5,
    probing_mode: int = 1,
    extra: str = "",
) -> str:
    """A ``[balancer]`` section probing every destination often (failover tests)."""
    return (
        "[balancer]\n"
        f'listen = "udp:127.0.0.1:{port}"\n'
        'list_file = "dispatcher.list"\n'
        "set = 1\n"
        f"algorithm = {algorithm}\n"
        f"ping_interval = {ping_interval}\n"
        f"ping_timeout = {ping_timeout}\n"
        f"probing_mode = {probing_mode}\n"
        f"{extra}"
    )


class BalancerStartError(StartError):
    """The balancer did not print its ready line in time (or exited)."""


class BalancerProcess(ManagedProcess):
    """One ``callway balancer -c DIR`` process (restartable, reloadable)."""

    name = "callway balancer"
    ready_marker = READY_MARKER
    start_error = BalancerStartError

    def __init__(
        self,
        config_dir: Path,
        sip_port: int,
        *,
        env: dict[str, str] | None = None,
        workers: int = 1,
    ):
        super().__init__(config_dir, sip_port, env=env)
        self.workers = workers

    @property
    def target(self) -> str:
        """``host:port`` for sipp."""
        return f"{self.host}:{self.sip_port}"

    @property
    def list_path(self) -> Path:
        return self.config_dir / "dispatcher.list"

    @property
    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "callway", "balancer", "-c", str(self.config_dir)]
        return argv + (["--workers", str(self.workers)] if self.workers > 1 else [])

    @property
    def control_socket(self) -> Path:
        """The console's socket (``STATE_DIR/callway.ctl``; the state dir is the config dir)."""
        return self.config_dir / "callway.ctl"

    def console(self, command: str) -> subprocess.CompletedProcess[str]:
        """``callway console --socket ... -x COMMAND``."""
        return subprocess.run(
            [sys.executable, "-m", "callway", "console", "--socket", str(self.control_socket),
             "-x", command],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip

    def reload(self) -> None:
        """SIGHUP: re-read dispatcher.list."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


def write_balancer_config(config_dir: Path, nodes: Sequence[Node], toml: str) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "dispatcher.list").write_text(dispatcher_list(nodes))
    (config_dir / "callway.toml").write_text(toml)


@contextlib.contextmanager
def run_balancer(
    config_dir: Path,
    nodes: Sequence[Node],
    *,
    port: int | None = None,
    workers: int = 1,
    **toml_kwargs: object,
) -> Iterator[BalancerProcess]:
    """Write the config under ``config_dir`` and run the balancer for the block.

    ``toml_kwargs`` go to :func:`balancer_toml`; ``workers`` > 1 adds ``--workers``.
    On an exception the log is
    printed (pytest shows it with the failure); the process is always stopped.
    """
    sip_port = port if port is not None else free_sip_port()
    write_balancer_config(config_dir, nodes, balancer_toml(sip_port, **toml_kwargs))  # type: ignore[arg-type]
    balancer = BalancerProcess(config_dir, sip_port, workers=workers)
    with running(balancer) as started:
        yield started


# --------------------------------------------------------------------------
# sipp in the background: the nodes behind the balancer
# --------------------------------------------------------------------------
class SippServer:
    """A sipp UAS scenario running in the background on a fixed port.

    The scenario's ``<log message=...>`` lines go to ``log_file``;
    :meth:`count` counts lines starting with a word (``INVITE``, ``BYE``...).
    """

    def __init__(
        self,
        workdir: Path,
        scenario: str,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> None:
        self.workdir = workdir
        self.scenario = scenario
        self.port = port if port is not None else free_port_pair_block(1)
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.log_file = workdir / "actions.log"
        self.out_path = workdir / "sipp.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        sipp = shutil.which("sipp")
        if sipp is None:
            raise FileNotFoundError("sipp")
        scenario = SCENARIOS / self.scenario
        return [
            sipp, "-sf", str(scenario), "-nostdin", "-i", "127.0.0.1", "-p", str(self.port),
            "-t", "u1", "-timeout", f"{int(self.timeout)}s", "-trace_logs",
            "-log_file", str(self.log_file), "-trace_err",
            "-error_file", str(self.workdir / "errors.log"), "-trace_msg",
            "-message_file", str(self.workdir / "messages.log"), "-max_recv_loops", "1000",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> SippServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._out = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, cwd=self.workdir,
        )  # fmt: skip
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _udp_bound(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"sipp UAS did not start on {self.port}:\n{self.output()}")

    def stop(self) -> int | None:
        """Stop at once (SIGTERM, then SIGKILL)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3)
        if self._out is not None:
            self._out.close()
            self._out = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL at once (a crashed node)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(3)
        self.stop()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def actions(self) -> list[str]:
        if not self.log_file.exists():
            return []
        return [line.strip() for line in self.log_file.read_text(errors="replace").splitlines()]

    def count(self, word: str) -> int:
        """Distinct Call-IDs logged with ``word`` (``INVITE``/``BYE``...)."""
        return len(self.call_ids(word))

    def call_ids(self, word: str) -> set[str]:
        prefix = f"{word} "
        return {line[len(prefix) :] for line in self.actions() if line.startswith(prefix)}

    def messages(self) -> str:
        path = self.workdir / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> SippServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _udp_bound(port: int) -> bool:
    """True once something has bound UDP ``port`` on loopback (from /proc/net/udp)."""
    needle = f"0100007F:{port:04X}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            if line.split()[1] == needle:
                return True
    return False


# --------------------------------------------------------------------------
# Debian's Kamailio with the seed's dispatcher config (a reference balancer)
# --------------------------------------------------------------------------
KAMAILIO_CFG = Path(__file__).resolve().parents[2] / "bench" / "kamailio-dispatcher.cfg"
KAMAILIO_MPATH = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


def fill_kamailio_cfg(template: Path, **values: object) -> str:
    """``template`` (a ``bench/kamailio-*.cfg``) with its ``@KEY@`` placeholders filled in."""
    text = template.read_text()
    for key, value in {"MPATH": KAMAILIO_MPATH, **values}.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def kamailio_cfg(port: int, list_file: Path, *, children: int = 2, ping: int = 1,
                 debug: int = 1) -> str:  # fmt: skip
    """``bench/kamailio-dispatcher.cfg`` with its placeholders filled in."""
    return fill_kamailio_cfg(KAMAILIO_CFG, PORT=port, CHILDREN=children, LIST=list_file,
                             PING=ping, DEBUG=debug)  # fmt: skip


class KamailioProcess(BalancerProcess):
    """Debian's Kamailio (``kamailio -DD -E``) on a config written to ``workdir``.

    Seen through the balancer helper (``target``, ``sip_port``, logs), so a
    test can put it where a ``callway balancer`` goes.  Ready once its SIP
    port is bound and, with a ``ctl`` socket, once that socket exists.
    """

    name = "kamailio"
    start_error = BalancerStartError

    def __init__(self, workdir: Path, sip_port: int, cfg_text: str, *, ctl: Path | None = None):
        super().__init__(workdir, sip_port)
        self.cfg = workdir / "kamailio.cfg"
        self.cfg.write_text(cfg_text)
        self.ctl = ctl
        (workdir / "run").mkdir(exist_ok=True)

    @property
    def argv(self) -> list[str]:
        rundir = str(self.config_dir / "run")
        return [shutil.which("kamailio") or "/usr/sbin/kamailio", "-DD", "-E", "-f", str(self.cfg),
                "-x", "tlsf", "-X", "tlsf", "-m", "64", "-P", str(self.config_dir / "kamailio.pid"),
                "-Y", rundir, "-w", rundir]  # fmt: skip

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _udp_bound(self.sip_port) or (self.ctl is not None and not self.ctl.exists()):
            if not self.running or time.monotonic() > deadline:
                self.stop()
                raise self.start_error(f"kamailio did not start:\n{self.log_text()}")
            time.sleep(0.05)

    def kamcmd(self, *command: str) -> str:
        """``kamcmd -s unix:CTL COMMAND...``: stdout and stderr."""
        assert self.ctl is not None, "kamcmd needs a Kamailio started with a ctl socket"
        binary = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        done = subprocess.run(
            [binary, "-s", f"unix:{self.ctl}", *command],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return done.stdout + done.stderr


@contextlib.contextmanager
def run_kamailio(
    workdir: Path, nodes: Sequence[Node], *, port: int | None = None, children: int = 2,
    ping: int = 1,
) -> Iterator[KamailioProcess]:  # fmt: skip
    """Kamailio with ``bench/kamailio-dispatcher.cfg`` over ``nodes`` for the block."""
    workdir.mkdir(parents=True, exist_ok=True)
    sip_port = port if port is not None else free_sip_port()
    list_file = workdir / "dispatcher.list"
    list_file.write_text(dispatcher_list(nodes))
    cfg = kamailio_cfg(sip_port, list_file, children=children, ping=ping)
    with running(KamailioProcess(workdir, sip_port, cfg)) as kamailio:
        yield kamailio
