"""Run ``python -m callway pbx -c DIR`` as a real process for interop tests.

The configuration written is the seed document's (8005/8006 with digest auth,
context ``from-external``, ulaw only, one contact each), with the transports
bound to a free loopback port instead of ``0.0.0.0:5061``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tests.helpers.ports import free_sip_port

READY_MARKER = "callway pbx ready"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
USERS = ("8005", "8006")
REALM = "asterisk"

DEMO_EXTENSIONS = """\
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
"""
DEMO = DEMO_EXTENSIONS

_USER_SECTIONS = """\
[{user}]
type=endpoint
context=from-external
disallow=all
allow=ulaw
transport=transport-udp
auth={user}
aors={user}

[{user}]
type=auth
auth_type=userpass
password={user}
username={user}

[{user}]
type=aor
max_contacts=1
"""


def pjsip_conf(
    port: int,
    *,
    udp: bool = True,
    tcp: bool = True,
    extra: str = "",
    endpoint_options: dict[str, str] | None = None,
) -> str:
    """The seed's pjsip.conf with loopback transports on ``port``.

    ``endpoint_options`` maps a user to option lines added at the end of its
    endpoint section (e.g. ``{"8005": "rtp_timeout=2"}``); later lines win.
    """
    parts: list[str] = []
    if udp:
        parts.append(f"[transport-udp]\ntype=transport\nprotocol=udp\nbind=127.0.0.1:{port}\n")
    if tcp:
        parts.append(f"[transport-tcp]\ntype=transport\nprotocol=tcp\nbind=127.0.0.1:{port}\n")
    options = endpoint_options or {}
    for user in USERS:
        section = _USER_SECTIONS.format(user=user)
        if options.get(user):
            head, sep, rest = section.partition(f"aors={user}\n")
            section = f"{head}{sep}{options[user].strip()}\n{rest}"
        parts.append(section)
    if extra:
        parts.append(extra if extra.endswith("\n") else extra + "\n")
    return "\n".join(parts)


class PbxStartError(RuntimeError):
    """The PBX did not print its ready line in time (or exited)."""


class PbxProcess:
    """One ``callway pbx`` process over a config directory (restartable)."""

    def __init__(
        self,
        config_dir: Path,
        sip_port: int,
        *,
        ready_timeout: float = READY_TIMEOUT,
        env: dict[str, str] | None = None,
        log_args: tuple[str, ...] = (),
    ) -> None:
        self.config_dir = config_dir
        self.log_args = log_args  # global options before the subcommand: -v, --log-json
        self.sip_port = sip_port
        self.ready_timeout = ready_timeout
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._logs: list[Path] = []
        self._log_handle: IO[bytes] | None = None

    # -- paths --------------------------------------------------------------
    @property
    def sqlite_path(self) -> Path:
        return self.config_dir / "callway.sqlite"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.sip_port}"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "callway", *self.log_args, "pbx", "-c", str(self.config_dir)]

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> PbxProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("PBX already running")
        self.starts += 1
        log = self.config_dir / f"pbx-stderr-{self.starts}.log"
        self._logs.append(log)
        self._log_handle = log.open("wb")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=self.config_dir,
            env=env,
        )
        self._wait_ready(log)
        return self

    def _wait_ready(self, log: Path) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if READY_MARKER in log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise PbxStartError(
                    f"callway pbx exited with {self.proc.returncode} before ready:\n"
                    + self.stderr_text()
                )
            time.sleep(0.05)
        self.stop()
        raise PbxStartError(
            f"callway pbx not ready within {self.ready_timeout} s:\n" + self.stderr_text()
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL at once (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        self.stop()

    def restart(self) -> PbxProcess:
        """Graceful stop and start again on the same directory and port."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- inspection ---------------------------------------------------------
    def stderr_text(self) -> str:
        """Everything the process (all its starts) wrote to stderr/stdout."""
        chunks: list[str] = []
        for index, log in enumerate(self._logs, start=1):
            text = log.read_text(errors="replace") if log.exists() else ""
            chunks.append(f"----- callway pbx run {index} ({log.name}) -----\n{text}")
        return "\n".join(chunks)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read-only query on the PBX's SQLite state file."""
        if not self.sqlite_path.exists():
            raise FileNotFoundError(self.sqlite_path)
        conn = sqlite3.connect(self.sqlite_path, timeout=5.0)
        try:
            conn.row_factory = sqlite3.Row
            return list(conn.execute(sql, params))
        finally:
            conn.close()

    def contacts(self, aor: str | None = None) -> list[dict[str, Any]]:
        """Rows of the ``contacts`` table (all, or those of one AOR)."""
        if aor is None:
            rows = self.query("SELECT * FROM contacts")
        else:
            rows = self.query("SELECT * FROM contacts WHERE aor = ?", (aor,))
        return [dict(row) for row in rows]

    def wait_contacts(
        self, aor: str, *, present: bool = True, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Poll the state file until ``aor`` has (or has no) contact; returns the rows.

        The PBX batches its SQLite writes, so a binding shows up a little after
        the 200 OK.
        """
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while True:
            try:
                rows = self.contacts(aor)
            except (sqlite3.Error, FileNotFoundError):
                rows = []
            if bool(rows) == present or time.monotonic() >= deadline:
                return rows
            time.sleep(0.1)


def write_config(
    config_dir: Path,
    port: int,
    *,
    udp: bool = True,
    tcp: bool = True,
    extra_pjsip: str = "",
    extensions: str | None = DEMO,
    toml: str = "",
    endpoint_options: dict[str, str] | None = None,
) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    text = pjsip_conf(port, udp=udp, tcp=tcp, extra=extra_pjsip, endpoint_options=endpoint_options)
    (config_dir / "pjsip.conf").write_text(text)
    if extensions is not None:
        (config_dir / "extensions.conf").write_text(extensions)
    if toml:
        (config_dir / "callway.toml").write_text(toml)


@contextlib.contextmanager
def run_pbx(
    tmp_path: Path,
    *,
    udp: bool = True,
    tcp: bool = True,
    extra_pjsip: str = "",
    extensions: str | None = DEMO,
    toml: str = "",
    port: int | None = None,
    ready_timeout: float = READY_TIMEOUT,
    env: dict[str, str] | None = None,
    endpoint_options: dict[str, str] | None = None,
    log_args: tuple[str, ...] = (),
) -> Iterator[PbxProcess]:
    """Write the seed config under ``tmp_path/pbx`` and run the PBX for the block.

    On an exception inside the block the PBX's stderr is printed (pytest shows
    it with the failure); the process is always stopped.
    """
    config_dir = tmp_path / "pbx"
    sip_port = port if port is not None else free_sip_port()
    write_config(
        config_dir,
        sip_port,
        udp=udp,
        tcp=tcp,
        extra_pjsip=extra_pjsip,
        extensions=extensions,
        toml=toml,
        endpoint_options=endpoint_options,
    )
    pbx = PbxProcess(config_dir, sip_port, ready_timeout=ready_timeout, env=env,
                     log_args=log_args)  # fmt: skip
    try:
        pbx.start()
    except BaseException:
        pbx.stop()
        raise
    try:
        yield pbx
    except BaseException:
        print(pbx.stderr_text(), file=sys.stderr)
        raise
    finally:
        pbx.stop()
