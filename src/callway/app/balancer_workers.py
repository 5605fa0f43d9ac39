"""Several balancer processes on one UDP port: ``callway balancer --workers N``.

One Python process uses one core, so the balancer scales out with worker
processes forked before the event loop starts.  Each worker binds the
listening UDP port itself with ``SO_REUSEPORT``; the kernel spreads the
datagrams over the workers' sockets by their 4-tuple (source and destination
address and port).

That spreading alone is not enough for a stateful proxy:

* all the traffic of one peer is one 4-tuple: a sipp caller with one socket,
  an SBC in front of the balancer or a PBX node behind it lands on a single
  worker, whatever the number of workers;
* a response from a PBX node, a CANCEL, an ACK or a retransmission comes with
  another 4-tuple than the request that created the transaction, and may
  reach a worker that does not hold it.

Two rules fix it:

1. **Call-ID affinity on the shared port.**  Every datagram read on the
   shared port goes to the worker that *owns its Call-ID*
   (``crc32(Call-ID) % N``, found with one regex over the header block).  A
   worker that reads a datagram owned by another one passes it on over a
   Unix datagram socketpair, with its source address, and the owner handles
   it as if it had read it itself.  So every request of a call (INVITE,
   CANCEL, ACK, BYE, retransmissions, requests a node sends towards a phone)
   meets the transactions it belongs to, and the load is spread by Call-ID
   evenly, whoever sends.
2. **A private port per worker for what it sends.**  Requests a worker
   relays (and its probes) leave from its own port, which its Via names, so
   the answers (the bulk of a node's traffic) come straight back to that
   worker without a hand-off; answers that still reach the shared port (a
   peer ignoring Via) are handed over by Call-ID like the rest.  Record-Route
   and Path name the shared port, so in-dialog requests need no per-call
   memory and survive a restart, as with one process.

The price is one local datagram send and receive for about (N-1)/N of the
requests from phones: with the byte-level fast path a message costs some
tens of microseconds to proxy, and the hand-off adds about a quarter to the
CPU of a call (``bench/bench_balancer.py`` prints both).  (The phone side of a request that a
node sends towards a phone also comes from the private port: a phone behind
a NAT that filters by source port needs ``--workers 1``.)

Destination state stays consistent with one authority: worker 0, the
*primary* (the process the operator started), probes the nodes (from its
private port, with Call-IDs it owns), keeps the
states, posts the alerts and serves the console and the admin API.  The other
workers do not probe; they report each relayed request that failed on a node
(timeout, 5xx) to the primary at once, and the primary sends every worker the
destination states whenever they change (checked every 0.1 s) and tells them
to reload ``dispatcher.list`` when it does.  Each worker sends its proxy
counters once a second for ``stats``.  Workers stop when the primary asks
(SIGTERM on its stop) or when it disappears.

Limits: TCP listeners run in the primary only (a stream stays in the process
that accepted it); algorithm 10's call load is counted per worker, so
``maxload`` applies to each worker's share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from callway.core.address import Address

log = logging.getLogger("callway.balancer")

CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
SIP_FRAME = b"S"
CONTROL_FRAME = b"C"
CHANNEL_BUFFER = 8 * 1024 * 1024
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_BATCH = 64
_MAX_FRAME = 65535 + 512
STOP_TIMEOUT = 3.0

Control = Callable[[dict[str, object]], None]
Deliver = Callable[[bytes, Address], None]


def owner_of(data: bytes, count: int) -> int | None:
    """The worker owning this SIP message's Call-ID; None when it has none (STUN, CRLF)."""
    end = data.find(b"\r\n\r\n")
    match = CALL_ID.search(data, 0, end if end >= 0 else len(data))
    if match is None:
        return None
    return zlib.crc32(match.group(1).strip()) % count


def call_id_owned_by(index: int, count: int, host: str) -> str:
    """A new Call-ID that :func:`owner_of` gives to worker ``index`` (the answers come home)."""
    while True:
        call_id = f"{secrets.token_hex(10)}@{host}"
        if count <= 1 or zlib.crc32(call_id.encode()) % count == index:
            return call_id


@dataclass(slots=True)
class WorkerRole:
    """Which worker this process is, and its channels to the others."""

    index: int = 0
    count: int = 1
    inbox: socket.socket | None = None
    outboxes: dict[int, socket.socket] = field(default_factory=dict)
    children: list[int] = field(default_factory=list)
    primary_pid: int = field(default_factory=os.getpid)

    @property
    def primary(self) -> bool:
        """True in worker 0: probing, console, admin API, alerts."""
        return self.index == 0

    @property
    def orphaned(self) -> bool:
        """A worker whose primary is gone."""
        return not self.primary and os.getppid() != self.primary_pid


def _channel() -> tuple[socket.socket, socket.socket]:
    inbox, outbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock, options in ((outbox, (socket.SO_SNDBUF, _SO_SNDBUFFORCE)),
                          (inbox, (socket.SO_RCVBUF, _SO_RCVBUFFORCE))):  # fmt: skip
        for option in options:
            with contextlib.suppress(OSError):  # the FORCE variants need CAP_NET_ADMIN
                sock.setsockopt(socket.SOL_SOCKET, option, CHANNEL_BUFFER)
        sock.setblocking(False)
    return inbox, outbox


def fork_workers(count: int) -> WorkerRole:
    """Fork ``count - 1`` workers; return this process's role (call before the loop runs)."""
    if count <= 1:
        return WorkerRole()
    channels = [_channel() for _ in range(count)]
    sys.stdout.flush()
    sys.stderr.flush()
    primary_pid = os.getpid()
    children: list[int] = []
    index = 0
    for worker in range(1, count):
        pid = os.fork()
        if pid == 0:
            index, children = worker, []
            break
        children.append(pid)
    role = WorkerRole(index, count, channels[index][0], {}, children, primary_pid)
    for other, (inbox, outbox) in enumerate(channels):
        if other == index:
            outbox.close()
        else:
            inbox.close()
            role.outboxes[other] = outbox
    return role


async def stop_workers(role: WorkerRole, timeout: float = STOP_TIMEOUT) -> None:
    """The primary's stop: SIGTERM every worker, SIGKILL those still there after ``timeout``."""
    pending = set(role.children)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
            pending.discard(pid)
        await asyncio.sleep(0.05)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _encode_source(source: Address) -> bytes:
    local = source.local or ("", 0)
    return f"{source.transport} {source.host} {source.port} {local[0]} {local[1]}\n".encode()


def _decode_source(header: bytes) -> Address:
    transport, host, port, local_host, local_port = header.decode().split(" ")
    local = (local_host, int(local_port)) if local_host else None
    return Address(transport, host, int(port), local)


class WorkerLink:
    """This worker's end of the channels: hands datagrams to their owners, carries control."""

    def __init__(self, role: WorkerRole, deliver: Deliver, control: Control) -> None:
        self.role = role
        self.deliver = deliver
        self.control = control
        self.handed_off = 0
        self.dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading the inbox."""
        if self.role.inbox is not None:
            self._loop = loop
            loop.add_reader(self.role.inbox.fileno(), self._on_readable)

    def close(self) -> None:
        """Stop reading; close the channels."""
        inbox = self.role.inbox
        if inbox is not None:
            if self._loop is not None:
                self._loop.remove_reader(inbox.fileno())
            inbox.close()
        for outbox in self.role.outboxes.values():
            outbox.close()

    def route(self, data: bytes, source: Address) -> None:
        """Receiver of the shared UDP socket: handle here or pass to the Call-ID's owner."""
        role = self.role
        owner = owner_of(data, role.count)
        if owner is None or owner == role.index:
            self.deliver(data, source)
            return
        self.handed_off += 1
        self._send(owner, SIP_FRAME + _encode_source(source) + data)

    def send_control(self, worker: int, payload: dict[str, object]) -> None:
        """A JSON control message to one worker."""
        self._send(worker, CONTROL_FRAME + json.dumps(payload).encode())

    def broadcast(self, payload: dict[str, object]) -> None:
        """A JSON control message to every other worker."""
        frame = CONTROL_FRAME + json.dumps(payload).encode()
        for worker in self.role.outboxes:
            self._send(worker, frame)

    def _send(self, worker: int, frame: bytes) -> None:
        try:
            self.role.outboxes[worker].send(frame)
        except (BlockingIOError, ConnectionError, OSError) as exc:
            self.dropped += 1  # as a full UDP buffer would: the sender retransmits
            log.debug("worker channel to %d: %s", worker, exc)

    def _on_readable(self) -> None:
        inbox = self.role.inbox
        assert inbox is not None
        for _ in range(_BATCH):
            try:
                frame = inbox.recv(_MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("worker channel receive: %s", exc)
                return
            try:
                self._dispatch(frame)
            except Exception:
                log.exception("error handling a frame from another worker")

    def _dispatch(self, frame: bytes) -> None:
        kind, body = frame[:1], frame[1:]
        if kind == SIP_FRAME:
            header, _, data = body.partition(b"\n")
            self.deliver(data, _decode_source(header))
        elif kind == CONTROL_FRAME:
            payload = json.loads(body)
            if isinstance(payload, dict):
                self.control(payload)
