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
    master = Node("master", "MASTER", ha.priority, ha.master_address, ha.backup_address)
    backup = Node("backup", "BACKUP", ha.priority - 50, ha.backup_address, ha.master_address)
    return master, backup


def render(ha: HaSettings, node: Node) -> str:
    """keepalived.conf text for ``node``."""
    unicast = ""
    if node.address and node.peer:
        unicast = (
            f"    unicast_src_ip {node.address}\n"
            f"    unicast_peer {{\n        {node.peer}\n    }}\n"
        )
    notify = f'    notify "{ha.notify}"\n' if ha.notify else ""
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
    advert_int {ha.advert_int}
{unicast}    virtual_ipaddress {{
        {ha.vip}/{ha.prefix} dev {ha.interface}
    }}
    track_script {{
        chk_callway
    }}
{notify}}}
"""
