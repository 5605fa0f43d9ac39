"""``callway keepalived``: a ready keepalived.conf for a master/backup balancer pair.

The seed's HA design: two balancers share a virtual IP by VRRP; a SIP
OPTIONS probe checked every second (``callway probe``, sipsak's exit codes)
makes the master give up the VIP after ``fall`` failures.  Each node probes
its *own* balancer (by default on 127.0.0.1, so the balancer must also listen
there or on 0.0.0.0): probing the VIP from the backup would test the master.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from callway.config.toml import HaSettings


@dataclass(frozen=True, slots=True)
class Node:
    """One side of the pair."""

    name: str
    state: str
    priority: int
    address: str
    peer: str


def probe_command(ha: HaSettings) -> str:
    """The vrrp_script command line (an absolute path: keepalived has no PATH)."""
    beside = Path(sys.executable).parent / "callway"
    found = str(beside) if beside.is_file() else shutil.which("callway")
    exe = ha.callway or found or f"{sys.executable} -m callway"
    return f"{exe} probe -q -t {ha.probe_timeout} {shlex.quote(ha.check_uri)}"


def nodes(ha: HaSettings) -> tuple[Node, Node]:
    """Master and backup, each pointing unicast adverts at the other."""
    # keepalived honours nopreempt and preempt_delay only on instances that start as BACKUP
    first = "BACKUP" if ha.nopreempt or ha.preempt_delay > 0 else "MASTER"
    master = Node("master", first, ha.priority, ha.master_address, ha.backup_address)
    backup = Node("backup", "BACKUP", ha.priority - 50, ha.backup_address, ha.master_address)
    return master, backup


def _number(value: float) -> str:
    """``1`` for 1.0, ``0.2`` for 0.2 (keepalived's parser wants no trailing ``.0``)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def render(ha: HaSettings, node: Node) -> str:
    """keepalived.conf text for ``node``.

    A sub-second ``advert_int`` needs VRRPv3 (keepalived rounds a VRRPv2
    interval up to whole seconds), so the instance then says ``version 3``:
    with 0.2 s adverts a backup notices a vanished master in about 0.7 s
    (3 adverts plus skew) instead of about 3.6 s.
    """
    unicast = ""
    if node.address and node.peer:
        unicast = (
            f"    unicast_src_ip {node.address}\n"
            f"    unicast_peer {{\n        {node.peer}\n    }}\n"
        )
    notify = f'    notify "{ha.notify}"\n' if ha.notify else ""
    version = "" if float(ha.advert_int).is_integer() else "    version 3\n"
    preempt = ""
    if ha.nopreempt:
        preempt = "    nopreempt\n"
    elif ha.preempt_delay > 0:
        preempt = f"    preempt_delay {_number(ha.preempt_delay)}\n"
    return f"""# keepalived.conf for callway balancer {node.name} (by callway keepalived)
# Needs net.ipv4.ip_nonlocal_bind=1 (or callway's IP_FREEBIND, on by default) so the
# backup's balancer can bind the VIP before it holds it.
global_defs {{
    router_id callway_{node.name}
    script_user root
    enable_script_security
}}

vrrp_script chk_callway {{
    script "{probe_command(ha)}"
    interval {ha.interval}
    timeout {max(1, int(ha.probe_timeout) + 1)}
    fall {ha.fall}
    rise {ha.rise}
}}

vrrp_instance CALLWAY_LB {{
    state {node.state}
    interface {ha.interface}
    virtual_router_id {ha.virtual_router_id}
    priority {node.priority}
{preempt}{version}    advert_int {_number(ha.advert_int)}
{unicast}    virtual_ipaddress {{
        {ha.vip}/{ha.prefix} dev {ha.interface}
    }}
    track_script {{
        chk_callway
    }}
{notify}}}
"""
