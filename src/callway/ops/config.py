"""``[trace]`` in ``callway.toml`` and the tracer built from it.

::

    [trace]
    pcap = "trace/all.pcap"      # global capture ('' = off), rotated by size
    pcap_max_mb = 100            # rotate when the file passes this size
    pcap_keep = 5                # rotated files kept (all.pcap.1 .. .5)
    per_call_dir = "trace/calls" # where start_call(call_id) writes by default
    hep = "10.0.0.5:9060"        # Homer collector ('' = off)
    hep_id = 2001                # capture agent id
    hep_password = ""            # HEP auth key (optional)

Relative paths are taken from the directory of the configuration.
:class:`TraceSettings` is a plain frozen dataclass whose constructor raises
``TypeError`` on a bad value, like the other sections of
:mod:`callway.config.toml`, so it can join that file's section table as is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callway.core.address import Address
from callway.ops.capture import RotatingPcapFile
from callway.ops.hep import HepSender, parse_hostport
from callway.ops.pcap import Endpoint
from callway.ops.tracer import SipTracer

__all__ = ["TraceHook", "TraceSettings", "build_tracer"]

TraceHook = Callable[[str, bytes, Address], None]
"""What ``SipStack.trace`` accepts."""


@dataclass(frozen=True, slots=True)
class TraceSettings:
    """``[trace]``: SIP capture to pcap files and HEP v3 export (all off by default)."""

    pcap: str = ""
    pcap_max_mb: float = 100.0
    pcap_keep: int = 5
    per_call_dir: str = ""
    hep: str = ""
    hep_id: int = 0
    hep_password: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.pcap_max_mb, int | float) or self.pcap_max_mb < 0:
            raise TypeError("pcap_max_mb must be a number >= 0 (0 = never rotate)")
        if not isinstance(self.pcap_keep, int) or self.pcap_keep < 0:
            raise TypeError("pcap_keep must be an integer >= 0")
        if not isinstance(self.hep_id, int) or not 0 <= self.hep_id <= 0xFFFFFFFF:
            raise TypeError("hep_id must be an integer in 0..4294967295")
        for name in ("pcap", "per_call_dir", "hep", "hep_password"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string")
        if self.hep:
            try:
                _, port = parse_hostport(self.hep)
            except ValueError as exc:
                raise TypeError(f"hep must be IP:PORT, not {self.hep!r}") from exc
            if not 0 < port < 65536:
                raise TypeError(f"hep must be IP:PORT, not {self.hep!r}")

    @property
    def enabled(self) -> bool:
        """True when any kind of tracing is configured."""
        return bool(self.pcap or self.per_call_dir or self.hep)


def build_tracer(
    settings: TraceSettings,
    *,
    base: Path | None = None,
    local_for: Callable[[str], Endpoint] | None = None,
) -> SipTracer | None:
    """The tracer for ``SipStack(trace=...)``, or None when tracing is off.

    ``base`` is the configuration directory (relative paths are resolved
    against it); ``local_for`` is the stack's ``default_local``, used when a
    message's address does not say which local socket it used.  The caller
    closes the tracer (:meth:`SipTracer.close`) at shutdown.
    """
    if not settings.enabled:
        return None
    root = base if base is not None else Path.cwd()
    pcap = None
    if settings.pcap:
        max_bytes = int(settings.pcap_max_mb * 1024 * 1024)
        pcap = RotatingPcapFile(root / settings.pcap, max_bytes, settings.pcap_keep)
    hep = None
    if settings.hep:
        hep = HepSender(settings.hep, capture_id=settings.hep_id, auth_key=settings.hep_password)
    per_call = root / settings.per_call_dir if settings.per_call_dir else None
    return SipTracer(pcap=pcap, per_call_dir=per_call, hep=hep, local_for=local_for)
