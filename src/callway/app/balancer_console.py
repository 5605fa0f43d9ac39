"""The balancer's console commands (Kamailio's ``kamcmd``/``kamctl`` names).

Served by the control socket (``STATE_DIR/callway.ctl``) to ``callway console``:

* ``dispatcher list`` (also ``dispatcher dump``, ``dispatcher show``): every set
  with its destinations, state letters (``AP``, ``IP``, ``DX`` ...), priority,
  attributes and the probe / request-failure counters, as ``kamctl dispatcher
  dump`` prints them;
* ``dispatcher set_state <letters> <setid> <uri|all>``: Kamailio's
  ``dispatcher.set_state`` (``dx`` drains a node for maintenance, ``ap`` puts
  it back, probing);
* ``dispatcher reload``: re-read ``dispatcher.list`` (a broken list is refused,
  the running one stays in force);
* ``dispatcher ping_active [0|1]``: pause or resume the probing rounds;
* ``core show version``, ``core uptime`` and ``stats`` (proxy counters, per
  worker process and in total).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from callway import __version__
from callway.app.control import Command, CommandError, table

if TYPE_CHECKING:
    from callway.app.balancer import BalancerApp

SET_STATE_USAGE = "Usage: dispatcher set_state <state: a|i|t|d [p|n|x]> <setid> <uri|all>"


def _when(moment: float | None) -> str:
    return "-" if moment is None else time.strftime("%H:%M:%S", time.localtime(moment))


def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}:{seconds % 3600 // 60:02d}:" \
        f"{seconds % 60:02d}"  # fmt: skip


def dispatcher_dump(app: BalancerApp) -> str:
    """``kamctl dispatcher dump``: sets, destinations, states and counters."""
    prober = app.picker.prober
    states = prober.states()
    lines = [f"NRSETS: {len(prober.sets)}  (in use: set {app.settings.setid}, "
             f"algorithm {app.settings.algorithm}, probing "
             f"{'on' if prober.ping_active else 'paused'})"]  # fmt: skip
    for setid in sorted(prober.sets):
        dset = prober.sets[setid]
        rows = []
        for s in (s for s in states if s.setid == setid):
            dest = dset.find(s.uri)
            rows.append([s.uri, s.letters, str(s.priority), dest.attrs if dest else "",
                         str(s.probes_sent), str(s.probes_ok), str(s.probes_failed),
                         str(s.request_failures), str(s.last_status or "-"),
                         _when(s.last_change)])  # fmt: skip
        headers = ["URI", "FLAGS", "PRIORITY", "ATTRS", "PROBES", "OK", "FAILED", "REQFAIL",
                   "LAST", "CHANGED"]  # fmt: skip
        lines += ["", f"SET: {setid}", table(headers, rows)]
    return "\n".join(lines)


def set_state(app: BalancerApp, args: list[str]) -> str:
    """``dispatcher set_state <letters> <setid> <uri|all>``."""
    if len(args) != 3 or not args[1].isdigit():
        raise CommandError(SET_STATE_USAGE)
    letters, setid, uri = args[0], int(args[1]), args[2]
    try:
        changed = app.set_destination_state(letters, setid, uri)
    except ValueError as exc:
        raise CommandError(f"{exc}\n{SET_STATE_USAGE}") from None
    except KeyError:
        raise CommandError(f"no destination {uri} in set {setid}") from None
    shown = ", ".join(
        f"{s.uri} {s.letters}"
        for s in app.picker.prober.states()
        if s.setid == setid and (uri == "all" or s.uri.casefold() == uri.casefold())
    )
    return f"{changed} destination(s) set: {shown}"


def stats(app: BalancerApp) -> str:
    """Proxy counters per worker process and in total, alerts and overload."""
    per_worker = app.worker_stats()
    names = sorted({name for counters in per_worker.values() for name in counters})
    rows = [[str(index), *(str(c.get(name, 0)) for name in names)]
            for index, c in sorted(per_worker.items())]  # fmt: skip
    total = ["total", *(str(sum(c.get(n, 0) for c in per_worker.values())) for n in names)]
    alerts = app.alerts
    return "\n".join([
        table(["WORKER", *(n.upper() for n in names)], [*rows, total]),
        f"alerts: sent {alerts.sent}, failed {alerts.failed}"
        + ("" if alerts.url else " (no alert_url)"),
    ])  # fmt: skip


def balancer_commands(app: BalancerApp) -> dict[str, Command]:
    """Command name -> handler taking the remaining words."""

    def dump(_args: list[str]) -> str:
        return dispatcher_dump(app)

    def reload(_args: list[str]) -> str:
        if app.reload():
            return "dispatcher list reloaded."
        raise CommandError("reload failed, keeping the running list: see the log")

    def ping_active(args: list[str]) -> str:
        prober = app.picker.prober
        if args:
            if args[0] not in ("0", "1"):
                raise CommandError("Usage: dispatcher ping_active [0|1]")
            prober.ping_active = args[0] == "1"
        return f"ping_active: {int(prober.ping_active)}"

    def version(_args: list[str]) -> str:
        return f"callway {__version__} (balancer, {app.settings.workers} worker process(es))"

    def uptime(_args: list[str]) -> str:
        return f"up {_uptime(time.time() - app.started)}"

    return {
        "dispatcher list": dump,
        "dispatcher dump": dump,
        "dispatcher show": dump,
        "dispatcher set_state": lambda args: set_state(app, args),
        "dispatcher reload": reload,
        "dispatcher ping_active": ping_active,
        "core show version": version,
        "core uptime": uptime,
        "stats": lambda _args: stats(app),
        "core show stats": lambda _args: stats(app),
    }
