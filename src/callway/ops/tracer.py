"""``SipTracer``: the SIP stack's trace hook, writing pcap files and HEP.

The stack calls ``tracer(direction, data, address)`` for every SIP message it
receives (``"recv"``: ``address`` is the sender, ``address.local`` our socket)
or sends (``"send"``: ``address`` is the destination).  The tracer writes

- every message to a global capture, rotated by size (``pcap``);
- the messages of chosen calls to their own captures, started and stopped on
  demand by Call-ID (:meth:`SipTracer.start_call`);
- every message to a Homer collector as HEP v3 (``hep``).

The hot path does not parse SIP: the Call-ID is found with one regular
expression over the header block, and only when a per-call capture or HEP
needs it.  When tracing is off the stack holds ``None`` and pays nothing.
A failing disk or collector never disturbs the call: errors are logged once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from callway.core.address import Address
from callway.ops.capture import PcapFile, RotatingPcapFile
from callway.ops.hep import HepSender
from callway.ops.pcap import Endpoint, PacketEncoder

__all__ = ["MAX_CALL_CAPTURES", "SipTracer", "call_id_of", "capture_name"]

log = logging.getLogger("callway.ops.trace")

MAX_CALL_CAPTURES = 256
"""Per-call captures open at once (each holds a file descriptor)."""

_CALL_ID = re.compile(rb"\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
_WILDCARDS = ("", "0.0.0.0", "::")


def call_id_of(data: bytes) -> str:
    """The Call-ID header value of a raw SIP message ('' if there is none).

    Looks at the header block only (up to the first empty line), full or
    compact form (``i:``), any letter case.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    match = _CALL_ID.search(data, 0, end if end >= 0 else len(data))
    if match is None:
        return ""
    return match.group(1).strip().decode("utf-8", "replace")


def capture_name(call_id: str) -> str:
    """A file name for a call's capture (the Call-ID with unsafe characters replaced)."""
    return _UNSAFE.sub("_", call_id)[:120] + ".pcap"


class _CallCapture:
    """One call's pcap file with its own TCP sequence numbering."""

    def __init__(self, path: Path) -> None:
        self.file = PcapFile(path)
        self.encoder = PacketEncoder()


_KEY = re.compile(rb"(a=crypto:[^\r\n]*?inline:)([^\s|\r\n]+)")


def redact_keys(data: bytes) -> bytes:
    """SDES keys (RFC 4568 ``inline:``) never reach a capture file or collector."""
    return _KEY.sub(rb"\1<hidden>", data)


class SipTracer:
    """Callable trace hook: ``tracer("recv" | "send", data, address)``.

    ``local_for(transport)`` gives our (host, port) when an address carries no
    ``local`` (a request leaving on a new connection): the lead passes the
    stack's ``default_local``.  ``clock`` stamps the packets (wall clock).
    """

    def __init__(
        self,
        *,
        pcap: RotatingPcapFile | None = None,
        per_call_dir: Path | None = None,
        hep: HepSender | None = None,
        local_for: Callable[[str], Endpoint] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pcap = pcap
        self.per_call_dir = per_call_dir
        self.hep = hep
        self.local_for = local_for
        self.clock = clock
        self.errors = 0
        self._encoder = PacketEncoder()
        self._calls: dict[str, _CallCapture] = {}
        self._logged_error = False

    # -- per-call captures ---------------------------------------------------

    def start_call(self, call_id: str, path: Path | None = None) -> Path:
        """Capture the messages of ``call_id`` (from now on) into ``path``.

        ``path`` defaults to ``per_call_dir/<Call-ID>.pcap``.  Starting a call
        that is already captured returns its path.
        """
        current = self._calls.get(call_id)
        if current is not None:
            return current.file.path
        if path is None:
            if self.per_call_dir is None:
                raise ValueError("no per_call_dir configured: give a path")
            path = self.per_call_dir / capture_name(call_id)
        if len(self._calls) >= MAX_CALL_CAPTURES:
            raise ValueError(f"already {MAX_CALL_CAPTURES} per-call captures running")
        self._calls[call_id] = _CallCapture(path)
        log.info("capturing call %s to %s", call_id, path, extra={"call_id": call_id})
        return path

    def link(self, call_id: str, other: str) -> bool:
        """Write ``other``'s messages into ``call_id``'s capture too, if it is running.

        For the other dialogs of one call (a B2BUA's callee legs have their
        own Call-IDs) and for other names of the capture (the PBX's channel
        id), so that :meth:`stop_call` of any of them stops it.  False when
        ``call_id`` is not captured or ``other`` already is.
        """
        capture = self._calls.get(call_id)
        if capture is None or other in self._calls:
            return False
        self._calls[other] = capture
        return True

    def stop_call(self, call_id: str) -> Path | None:
        """Stop capturing ``call_id`` (and its links); returns the file written (None if none)."""
        capture = self._calls.pop(call_id, None)
        if capture is None:
            return None
        for linked in [key for key, value in self._calls.items() if value is capture]:
            del self._calls[linked]
        capture.file.close()
        return capture.file.path

    @property
    def calls(self) -> dict[str, Path]:
        """Call-IDs (and linked names) being captured, with their files."""
        return {call_id: c.file.path for call_id, c in self._calls.items()}

    # -- the hook ------------------------------------------------------------

    def __call__(self, direction: str, data: bytes, address: Address) -> None:
        """Trace one SIP message (called by the stack for every message)."""
        calls = self._calls
        if self.pcap is None and self.hep is None and not calls:
            return
        try:
            self._trace(direction, data, address, calls)
        except Exception as exc:  # tracing must never break SIP handling
            self.errors += 1
            if not self._logged_error:
                self._logged_error = True
                log.warning("SIP tracing failed (further errors are counted): %r", exc)

    def _trace(
        self, direction: str, data: bytes, address: Address, calls: dict[str, _CallCapture]
    ) -> None:
        now = self.clock()
        if b"inline:" in data:
            data = redact_keys(data)
        peer = (address.host, address.port)
        local = self._local(address)
        src, dst = (peer, local) if direction == "recv" else (local, peer)
        transport = address.transport
        if self.pcap is not None:
            self.pcap.write(now, self._encoder.encode(transport, src, dst, data))
        call_id = call_id_of(data) if calls or self.hep is not None else ""
        if calls:
            capture = calls.get(call_id)
            if capture is not None:
                capture.file.write(now, capture.encoder.encode(transport, src, dst, data))
        if self.hep is not None:
            self.hep.send(data, src, dst, now, transport=transport, correlation_id=call_id)

    def _local(self, address: Address) -> Endpoint:
        local = address.local
        if local is not None and local[0] not in _WILDCARDS:
            return local
        fallback = self.local_for(address.transport) if self.local_for is not None else None
        if local is None:
            return fallback or ("0.0.0.0", 5060)
        return (fallback[0] if fallback else local[0] or "0.0.0.0"), local[1]

    def close(self) -> None:
        """Close every capture file and the HEP socket."""
        for call_id in list(self._calls):
            self.stop_call(call_id)
        if self.pcap is not None:
            self.pcap.close()
        if self.hep is not None:
            self.hep.close()
