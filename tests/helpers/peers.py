"""Third-party SIP peers (sipp, sipsak, baresip, pjsua2) driven from tests.

Recipes follow shared/PEERS.md (beside the repository): every peer gets explicit loopback
addresses and ports, runs bounded in time and is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.helpers.ports import free_port_pair_block, free_rtp_range, free_tcp_port

INTEROP_DIR = Path(__file__).resolve().parent.parent / "interop"
SCENARIOS = INTEROP_DIR / "scenarios"
PJSUA2_SCRIPT = INTEROP_DIR / "pjsua2_register.py"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --------------------------------------------------------------------------
# availability
# --------------------------------------------------------------------------
def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require_binary(name: str) -> str:
    """Path of ``name``; skip the test if absent (fail instead under CI=true)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name!r} is not installed (apt-get install the peer; see PEERS.md)"
        if in_ci():
            pytest.fail(message + " and CI=true: interop peers are mandatory in CI")
        pytest.skip(message)
    return path


def require_pjsua2() -> None:
    import importlib.util

    if importlib.util.find_spec("pjsua2") is None:
        message = "pjsua2 is not importable; pip install pjsua2-python"
        if in_ci():
            pytest.fail(message + " and CI=true: interop peers are mandatory in CI")
        pytest.skip(message)


# --------------------------------------------------------------------------
# sipp
# --------------------------------------------------------------------------
class SippResult(subprocess.CompletedProcess[str]):
    """A finished sipp run plus its trace files."""

    trace_dir: Path

    def _read(self, suffix: str) -> str:
        texts = [p.read_text(errors="replace") for p in sorted(self.trace_dir.glob(f"*{suffix}"))]
        return "\n".join(texts)

    def messages(self) -> str:
        """The -trace_msg log: every SIP message sipp sent and received."""
        return self._read("messages.log")

    def errors(self) -> str:
        """The -trace_err log: unexpected messages and failures."""
        return self._read("errors.log")

    def received(self) -> list[str]:
        """Start lines of the messages sipp received (e.g. ``SIP/2.0 401 Unauthorized``)."""
        return sipp_received_start_lines(self.messages())

    def describe(self) -> str:
        return (
            f"sipp exited {self.returncode}: {' '.join(self.args)}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}\n"
            f"--- errors.log ---\n{self.errors()[-4000:]}\n"
            f"--- messages.log ---\n{self.messages()[-12000:]}"
        )


def sipp_received_start_lines(messages_log: str) -> list[str]:
    """First lines of the messages sipp logged as received."""
    lines: list[str] = []
    blocks = re.split(r"^-{10,}.*$", messages_log, flags=re.MULTILINE)
    for block in blocks:
        text = block.strip("\n")
        if not text:
            continue
        head, _, rest = text.partition("\n")
        if "message received" in head:
            first = rest.lstrip("\n").split("\n", 1)[0].strip()
            if first:
                lines.append(first)
    return lines


def run_sipp(
    scenario_xml_path: Path | str,
    target: str,
    *,
    local_port: int | None = None,
    extra_args: Sequence[str] = (),
    calls: int = 1,
    timeout: float = 20,
    transport: str = "u1",
    service: str | None = None,
    trace_dir: Path | None = None,
) -> SippResult:
    """Run a sipp scenario in the foreground and return its result.

    ``target`` is ``host:port``; sipp binds 127.0.0.1 (``-i``) and
    ``local_port`` (``-p``; a free one if None).  sipp's own ``-timeout`` ends
    the run after ``timeout`` seconds (``-timeout_error`` makes that a
    failure); the subprocess is killed a few seconds later if sipp hangs.
    """
    sipp = shutil.which("sipp")
    if sipp is None:
        raise FileNotFoundError("sipp")
    scenario = Path(scenario_xml_path)
    if not scenario.is_absolute() and not scenario.exists():
        scenario = SCENARIOS / scenario
    tdir = trace_dir if trace_dir is not None else Path(tempfile.mkdtemp(prefix="sipp-"))
    tdir.mkdir(parents=True, exist_ok=True)
    if local_port is None:
        local_port = free_port_pair_block(1)
    seconds = max(1, int(timeout))
    argv = [
        sipp,
        target,
        "-sf",
        str(scenario.resolve()),
        "-nostdin",
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-t",
        transport,
        "-m",
        str(calls),
        "-l",
        str(max(1, calls)),
        "-timeout",
        f"{seconds}s",
        "-timeout_error",
        "-recv_timeout",
        f"{seconds * 1000}",
        "-trace_err",
        "-trace_msg",
        "-error_file",
        str(tdir / f"{scenario.stem}_errors.log"),
        "-message_file",
        str(tdir / f"{scenario.stem}_messages.log"),
    ]
    if service is not None:
        argv += ["-s", service]
    argv += list(extra_args)
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=tdir,
            timeout=seconds + 10,
            check=False,
        )
        returncode, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = -9
        out = _text(exc.stdout)
        err = _text(exc.stderr) + "\n[harness] sipp killed after its timeout"
    result = SippResult(argv, returncode, out, err)
    result.trace_dir = tdir
    return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


# --------------------------------------------------------------------------
# sipsak
# --------------------------------------------------------------------------
def run_sipsak(
    uri: str,
    *,
    timeout_flag: str = "-D 1",
    extra_args: Sequence[str] = (),
    timeout: float = 15,
) -> int:
    """``sipsak <timeout_flag> -s URI``; 0 = 200, 1 = other final, 2 = error, 3 = timeout."""
    return run_sipsak_full(
        uri, timeout_flag=timeout_flag, extra_args=extra_args, timeout=timeout
    ).returncode


def run_sipsak_full(
    uri: str,
    *,
    timeout_flag: str = "-D 1",
    extra_args: Sequence[str] = (),
    timeout: float = 15,
) -> subprocess.CompletedProcess[str]:
    sipsak = shutil.which("sipsak")
    if sipsak is None:
        raise FileNotFoundError("sipsak")
    argv = [sipsak, *timeout_flag.split(), *extra_args, "-vv", "-s", uri]
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --------------------------------------------------------------------------
# pjsua2 (as a subprocess: one Endpoint per process)
# --------------------------------------------------------------------------
def run_pjsua2_register(
    registrar: str,
    user: str,
    password: str,
    *,
    transport: str = "udp",
    timeout: float = 10,
    local_port: int = 0,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run tests/interop/pjsua2_register.py; see that script for its output."""
    argv = [
        sys.executable,
        str(PJSUA2_SCRIPT),
        "--registrar",
        registrar,
        "--user",
        user,
        "--password",
        password,
        "--transport",
        transport,
        "--timeout",
        str(timeout),
        "--local-port",
        str(local_port),
        *extra_args,
    ]
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout * 2 + 15,
        check=False,
    )


# --------------------------------------------------------------------------
# baresip
# --------------------------------------------------------------------------
def write_silence_wav(path: Path, seconds: float = 30.0, rate: int = 8000) -> Path:
    """S16LE mono WAV of silence (baresip's aufile source for G.711)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return path


@dataclass
class SipTraceMessage:
    """One message from baresip's ``-s`` SIP trace."""

    transport: str
    src: str
    dst: str
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    def header(self, name: str) -> str | None:
        prefix = name.lower() + ":"
        for line in self.text.split("\n")[1:]:
            if not line.strip():
                break
            if line.lower().startswith(prefix):
                return line.split(":", 1)[1].strip()
        return None


def parse_baresip_trace(log: str) -> list[SipTraceMessage]:
    """Messages of a baresip ``-s`` trace (ANSI colour stripped)."""
    text = _ANSI.sub("", log).replace("\r\n", "\n")
    messages: list[SipTraceMessage] = []
    pattern = re.compile(
        r"^#\n(?P<tp>UDP|TCP|TLS|WS|WSS) (?P<src>\S+) -> (?P<dst>\S+)\n(?P<body>.*?)(?=^#\n|\Z)",
        re.MULTILINE | re.DOTALL,
    )
    for match in pattern.finditer(text):
        body = match.group("body")
        # the trace block ends at the first blank line after the headers (no bodies
        # on REGISTER); keep it all but trim the trailing non-SIP log lines.
        messages.append(
            SipTraceMessage(match.group("tp"), match.group("src"), match.group("dst"), body)
        )
    return messages


_CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block's socket creation inside network namespace ``name`` (this thread).

    A socket belongs to the namespace it was created in, for good: create it
    inside the block, use it anywhere.  Needs root (``setns(2)``).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{name}") as target:
        if libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home failed")


class CtrlTcp:
    """A netstring-JSON client for baresip's ctrl_tcp module.

    ``netns``: baresip runs in that network namespace (its 127.0.0.1 is not ours).
    """

    def __init__(self, port: int, *, timeout: float = 5.0, netns: str | None = None) -> None:
        if netns is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            with in_netns(netns):
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(("127.0.0.1", port))
            except OSError:
                self.sock.close()
                raise
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self._token = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _send(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data + b",")

    def _next_frame(self, deadline: float) -> dict[str, Any] | None:
        while True:
            colon = self.buffer.find(b":")
            if colon > 0:
                length = int(self.buffer[:colon])
                end = colon + 1 + length
                if len(self.buffer) >= end + 1:
                    data = self.buffer[colon + 1 : end]
                    self.buffer = self.buffer[end + 1 :]
                    frame: dict[str, Any] = json.loads(data)
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("baresip closed ctrl_tcp")
            self.buffer += chunk

    def command(self, command: str, params: str = "", *, timeout: float = 5.0) -> dict[str, Any]:
        """Send a command and return its response (events seen meanwhile are kept)."""
        self._token += 1
        token = f"t{self._token}"
        self._send({"command": command, "params": params, "token": token})
        deadline = time.monotonic() + timeout
        while True:
            frame = self._next_frame(deadline)
            if frame is None:
                raise TimeoutError(f"no ctrl_tcp response to {command!r}")
            if frame.get("event"):
                self.events.append(frame)
            elif frame.get("token") == token:
                return frame

    def poll_events(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Read events for up to ``timeout`` seconds; returns all events so far."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._next_frame(deadline)
            if frame is None:
                return self.events
            if frame.get("event"):
                self.events.append(frame)


@dataclass
class Baresip:
    """A headless baresip instance with one account, driven over ctrl_tcp."""

    workdir: Path
    user: str
    password: str
    registrar_port: int
    registrar_host: str = "127.0.0.1"
    transport: str = "udp"
    regint: int = 60
    answermode: str = "auto"
    extra_account_params: str = ""
    sip_trace: bool = True
    sip_port: int = 0
    ctrl_port: int = 0
    rtp_ports: tuple[int, int] = (0, 0)
    # Inside a network namespace (tests/helpers/netns.py): baresip runs under
    # ``ip netns exec NETNS`` and binds SIP and RTP to ``bind_host`` there.
    bind_host: str = "127.0.0.1"
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    ctrl: CtrlTcp | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.sip_port:
            self.sip_port = free_port_pair_block(2)  # sip_listen P also binds P+1
        if not self.ctrl_port:
            self.ctrl_port = free_tcp_port()
        if self.rtp_ports == (0, 0):
            self.rtp_ports = free_rtp_range(10)
        self.log_path = self.workdir / "baresip.log"
        self.rec_dir = self.workdir / "rec"
        self.rec_dir.mkdir(exist_ok=True)
        self.audio_in = write_silence_wav(self.workdir / "in.wav")
        self._log: IO[bytes] | None = None

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.registrar_host}:{self.registrar_port}"

    def account_line(self) -> str:
        params = f";auth_pass={self.password};regint={self.regint}"
        if self.answermode:
            params += f";answermode={self.answermode}"
        return f"<{self.aor};transport={self.transport}>{params}{self.extra_account_params}"

    def config_text(self) -> str:
        first, last = self.rtp_ports
        modules = ["g711.so", "aufile.so", "aubridge.so", "sndfile.so"]
        lines = [
            f"sip_listen {self.bind_host}:{self.sip_port}",
            f"net_interface {self.bind_host}",
            f"rtp_ports {first}-{last}",
            f"audio_source aufile,{self.audio_in}",
            "audio_player aubridge,nil",
            "audio_alert aubridge,nil",
            "module_path /usr/lib/baresip/modules",
            *(f"module {m}" for m in modules),
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self.rec_dir}",
        ]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        (self.workdir / "config").write_text(self.config_text())
        (self.workdir / "accounts").write_text(self.account_line() + "\n")

    # -- lifecycle ----------------------------------------------------------
    def start(self, *, timeout: float = 10.0) -> Baresip:
        binary = shutil.which("baresip")
        if binary is None:
            raise FileNotFoundError("baresip")
        self.write_config()
        argv = [binary, "-f", str(self.workdir)]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        if self.sip_trace:
            argv.append("-s")
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        last_error: OSError | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"baresip exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                self.ctrl = CtrlTcp(self.ctrl_port, netns=self.netns)
                return self
            except OSError as exc:
                last_error = exc
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"baresip ctrl_tcp not reachable ({last_error}):\n{self.log_text()}")

    def command(self, command: str, params: str = "", *, timeout: float = 5.0) -> dict[str, Any]:
        if self.ctrl is None:
            raise RuntimeError("baresip not started")
        return self.ctrl.command(command, params, timeout=timeout)

    def reginfo(self) -> str:
        data = self.command("reginfo").get("data", "")
        return _ANSI.sub("", str(data))

    def events(self, timeout: float = 0.0) -> list[dict[str, Any]]:
        if self.ctrl is None:
            return []
        with contextlib.suppress(ConnectionError, OSError):
            self.ctrl.poll_events(timeout)
        return self.ctrl.events

    def is_registered(self) -> bool:
        """True once the registrar answered 2xx (trace, events or reginfo say so)."""
        if any(e.get("type") == "REGISTER_OK" for e in self.events()):
            return True
        info = self.reginfo()
        return any(self.user in line and re.search(r"\bOK\b", line) for line in info.splitlines())

    def wait_registered(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"baresip died:\n{self.log_text()}")
            if self.is_registered():
                return
            self.events(0.2)
        raise TimeoutError(
            f"baresip {self.user} not registered within {timeout} s; reginfo:\n"
            f"{self.reginfo()}\nevents: {self.events()}\nlog:\n{self.log_text()[-6000:]}"
        )

    def dial(self, uri: str) -> dict[str, Any]:
        return self.command("dial", uri)

    def hangup(self) -> dict[str, Any]:
        return self.command("hangup")

    def stop(self, timeout: float = 8.0) -> int | None:
        """Graceful: ``quit`` (un-REGISTER), then SIGTERM twice, then SIGKILL."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None and self.ctrl is not None:
            with contextlib.suppress(OSError, TimeoutError, ConnectionError):
                self.ctrl.command("quit", timeout=2.0)
        for sig in (None, signal.SIGTERM, signal.SIGTERM):
            if proc.poll() is not None:
                break
            if sig is not None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout / 2 if sig is None else 2.0)
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ---------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sip_trace_messages(self) -> list[SipTraceMessage]:
        return parse_baresip_trace(self.log_text())

    def register_exchanges(self) -> list[tuple[SipTraceMessage, list[str]]]:
        """Each REGISTER sent with the status lines of the responses to its CSeq."""
        msgs = self.sip_trace_messages()
        out: list[tuple[SipTraceMessage, list[str]]] = []
        seen: set[str] = set()
        for msg in msgs:
            if not msg.start_line.startswith("REGISTER "):
                continue
            cseq = msg.header("CSeq") or ""
            if cseq in seen:
                continue  # a retransmission
            seen.add(cseq)
            statuses = [
                m.start_line
                for m in msgs
                if m.start_line.startswith("SIP/2.0") and (m.header("CSeq") or "") == cseq
            ]
            out.append((msg, statuses))
        return out

    def unregister_statuses(self) -> list[str]:
        """Responses to the REGISTERs that removed the binding (expires 0)."""
        statuses: list[str] = []
        for request, responses in self.register_exchanges():
            contact = (request.header("Contact") or request.header("m") or "").lower()
            expires = (request.header("Expires") or "").strip()
            if "expires=0" in contact.replace(" ", "") or expires == "0":
                statuses.extend(responses)
        return statuses


@contextlib.contextmanager
def baresip_peer(workdir: Path, **kwargs: Any) -> Iterator[Baresip]:
    peer = Baresip(workdir, **kwargs)
    try:
        peer.start()
        yield peer
    except BaseException:
        print(f"--- baresip {peer.user} log ---\n{peer.log_text()[-8000:]}", file=sys.stderr)
        raise
    finally:
        peer.stop()
