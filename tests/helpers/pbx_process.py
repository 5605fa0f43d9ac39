"""Run ``python -m callway pbx -c DIR`` as a real process for interop tests.

The configuration written is the seed document's (8005/8006 with digest auth,
context ``from-external``, ulaw only, one contact each), with the transports
bound to a free loopback port instead of ``0.0.0.0:5061``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers.managed import READY_TIMEOUT, ManagedProcess, StartError, running
from tests.helpers.ports import free_sip_port

READY_MARKER = "callway pbx ready"
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


class PbxStartError(StartError):
    """The PBX did not print its ready line in time (or exited)."""


class PbxProcess(ManagedProcess):
    """One ``callway pbx`` process over a config directory (restartable)."""

    name = "callway pbx"
    ready_marker = READY_MARKER
    start_error = PbxStartError

    def __init__(
        self,
        config_dir: Path,
        sip_port: int,
        *,
        ready_timeout: float = READY_TIMEOUT,
        env: dict[str, str] | None = None,
        log_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(config_dir, sip_port, ready_timeout=ready_timeout, env=env)
        self.log_args = log_args  # global options before the subcommand: -v, --log-json

    # -- paths --------------------------------------------------------------
    @property
    def sqlite_path(self) -> Path:
        return self.config_dir / "callway.sqlite"

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.sip_port}"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "callway", *self.log_args, "pbx", "-c", str(self.config_dir)]

    # -- inspection ---------------------------------------------------------
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
    with running(pbx, tail=1_000_000) as started:
        yield started
