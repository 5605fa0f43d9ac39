"""A callway subcommand run as a real, restartable process for interop tests.

:class:`ManagedProcess` holds what ``callway pbx`` and ``callway balancer``
share in the tests: each start writes its own log file in the config
directory (``NAME-stderr-N.log``), waits for the ready line the process
prints, and stops with SIGTERM then SIGKILL.  Subclasses say which command
line runs and which line means ready.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Self, TypeVar

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


P = TypeVar("P", bound="ManagedProcess")


class StartError(RuntimeError):
    """The process did not print its ready line in time (or exited)."""


class ManagedProcess:
    """One process over a config directory; its logs kept across restarts."""

    name = "callway"
    ready_marker = ""
    start_error: type[StartError] = StartError

    def __init__(
        self,
        config_dir: Path,
        sip_port: int,
        *,
        ready_timeout: float = READY_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.sip_port = sip_port
        self.ready_timeout = ready_timeout
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._logs: list[Path] = []
        self._log_handle: IO[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def argv(self) -> list[str]:
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------
    def start(self, timeout: float | None = None) -> Self:
        if self.running:
            raise RuntimeError(f"{self.name} already running")
        self.starts += 1
        log = self.config_dir / f"{self.name.split()[-1]}-stderr-{self.starts}.log"
        self._logs.append(log)
        self._log_handle = log.open("wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update(self.env or {})
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log_handle,
            stderr=subprocess.STDOUT, cwd=self.config_dir, env=env,
        )  # fmt: skip
        self._wait_ready(self.ready_timeout if timeout is None else timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        try:
            self.wait_log(re.escape(self.ready_marker), timeout=timeout)
        except AssertionError as exc:
            self.stop()
            raise self.start_error(str(exc)) from None

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

    def restart(self) -> Self:
        """Graceful stop and start again on the same directory and port."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- logs ---------------------------------------------------------------
    def log_text(self) -> str:
        """Everything the process wrote, all starts joined."""
        return "\n".join(p.read_text(errors="replace") for p in self._logs if p.exists())

    def stderr_text(self) -> str:
        """Every start's output under a header naming the run."""
        chunks: list[str] = []
        for index, log in enumerate(self._logs, start=1):
            text = log.read_text(errors="replace") if log.exists() else ""
            chunks.append(f"----- {self.name} run {index} ({log.name}) -----\n{text}")
        return "\n".join(chunks)

    def wait_log(self, pattern: str, *, timeout: float = 10.0, count: int = 1) -> str:
        """Wait until ``pattern`` (a regex) matches ``count`` times in the log; the last match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.findall(self.log_text())
            if len(found) >= count:
                return str(found[-1])
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited {self.proc.returncode} waiting for {pattern!r}:\n"
                    + self.log_text()[-6000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {pattern!r} in the {self.name} log within {timeout} s:\n"
                    + self.log_text()[-6000:]
                )
            time.sleep(0.05)


@contextlib.contextmanager
def running(process: P, *, tail: int = 12000) -> Iterator[P]:
    """Start ``process`` for the block and always stop it.

    When the block raises, the last ``tail`` characters of every start's
    output are printed first (pytest shows them with the failure).
    """
    try:
        process.start()
    except BaseException:
        process.stop()
        raise
    try:
        yield process
    except BaseException:
        print(process.stderr_text()[-tail:], file=sys.stderr)
        raise
    finally:
        process.stop()
