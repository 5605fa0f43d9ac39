"""The PBX's console commands (Asterisk CLI names), served by the control socket."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from callway import __version__
from callway.app import captures
from callway.app.b2bua.dial import static_bindings
from callway.app.control import Command, CommandError, table

if TYPE_CHECKING:
    from callway.app.pbx import PbxApp


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _rtt(seconds: float | None) -> str:
    return "nan" if seconds is None else f"{seconds * 1000:.3f}"


def pbx_commands(app: PbxApp) -> dict[str, Command]:
    """Command name -> handler taking the remaining words."""

    def endpoints(_args: list[str]) -> str:
        now = time.time()
        rows = []
        for name, ep in sorted(app.config.endpoints.items()):
            contacts = [b for aor in ep.aors for b in app.location.lookup(aor, now)]
            state = "Available" if contacts else "Unavailable"
            in_use = sum(1 for c in app.calls.channels.values() if c.endpoint.name == name)
            rows.append([name, state, ep.context, ",".join(ep.allow), ",".join(ep.aors),
                         str(len(contacts)), str(in_use)])  # fmt: skip
        return table(["Endpoint", "State", "Context", "Codecs", "Aors", "Contacts", "Channels"],
                     rows)  # fmt: skip

    def contacts(_args: list[str]) -> str:
        """Registered and static contacts with their qualify status, as Asterisk lists them."""
        now = time.time()
        qualifier = app.keepalives.qualifier
        rows = []
        for b in app.location.all(now):
            status, rtt = qualifier.status(b.aor, b.uri)
            rows.append([b.aor, b.uri, status.value, _rtt(rtt), str(b.remaining(now)),
                         str(b.source), b.user_agent[:30]])  # fmt: skip
        for aor in sorted(app.config.aors.values(), key=lambda a: a.name):
            for b in static_bindings(aor):
                status, rtt = qualifier.status(b.aor, b.uri)
                rows.append([b.aor, b.uri, status.value, _rtt(rtt), "static", "-", "-"])
        return table(
            ["Aor", "Contact", "Status", "RTT(ms)", "Expires", "Source", "User-Agent"], rows
        )

    def aors(_args: list[str]) -> str:
        now = time.time()
        rows = [
            [name, str(aor.max_contacts), str(len(app.location.lookup(name, now))),
             str(aor.default_expiration)]
            for name, aor in sorted(app.config.aors.items())
        ]  # fmt: skip
        return table(["Aor", "MaxContact", "Contacts", "DefaultExpiration"], rows)

    def channels(_args: list[str]) -> str:
        now = time.time()
        rows = []
        for channel in app.calls.channels.values():
            state = "Up" if channel.leg.answered else "Ring"
            rows.append([channel.name, state, channel.exten, channel.peer or "-",
                         _duration(now - channel.started)])  # fmt: skip
        return table(["Channel", "State", "Exten", "Peer", "Duration"], rows)

    def cdrs(_args: list[str]) -> str:
        rows = [
            [r.uniqueid, r.caller, r.callee, time.strftime("%H:%M:%S", time.localtime(r.start)),
             r.disposition, str(r.duration), str(r.billsec)]
            for r in app.cdr.recent(20)
        ]  # fmt: skip
        return table(["UniqueID", "Src", "Dst", "Start", "Disposition", "Duration", "Billsec"],
                     rows)  # fmt: skip

    def version(_args: list[str]) -> str:
        return f"callway {__version__} (PBX)"

    def reload(_args: list[str]) -> str:
        return "Configuration reloaded." if app.reload() else "Reload failed: see the log."

    def capture_start(args: list[str]) -> str:
        if len(args) != 1:
            raise CommandError("Usage: sip capture start <call id or Call-ID>")
        try:
            call_id, path = captures.start(app, args[0])
        except KeyError:
            raise CommandError(f"No such call '{args[0]}'.") from None
        except ValueError as exc:
            raise CommandError(f"Cannot capture: {exc}") from None
        return f"Capturing call {call_id} to {path}"

    def capture_stop(args: list[str]) -> str:
        if len(args) != 1:
            raise CommandError("Usage: sip capture stop <call id or Call-ID>")
        try:
            path = captures.stop(app, args[0])
        except KeyError:
            raise CommandError(f"No capture of call '{args[0]}' is running.") from None
        return f"Capture stopped: {path}"

    return {
        "pjsip show endpoints": endpoints,
        "pjsip show contacts": contacts,
        "pjsip show aors": aors,
        "core show channels": channels,
        "cdr show": cdrs,
        "core show version": version,
        "module reload": reload,
        "core reload": reload,
        "sip capture start": capture_start,
        "sip capture stop": capture_stop,
    }
