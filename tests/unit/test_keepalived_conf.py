"""``callway keepalived`` renders configs keepalived itself accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from callway.app.keepalived import nodes, probe_command, render
from callway.config.toml import parse_settings

TOML = """
[ha]
vip = "10.99.0.100"
interface = "veth-lb"
master_address = "10.99.0.2"
backup_address = "10.99.0.3"
check_uri = "sip:s@127.0.0.1:5070"
fall = 3
"""


def test_render_master_and_backup() -> None:
    ha = parse_settings(TOML).ha
    master, backup = nodes(ha)
    text = render(ha, master)
    assert "state MASTER" in text and "priority 150" in text
    assert "unicast_src_ip 10.99.0.2" in text and "10.99.0.3" in text
    assert "10.99.0.100/24 dev veth-lb" in text
    assert "fall 3" in text and "interval 1" in text
    assert "probe -q -t 0.5 sip:s@127.0.0.1:5070" in text
    other = render(ha, backup)
    assert "state BACKUP" in other and "priority 100" in other
    assert "unicast_src_ip 10.99.0.3" in other


def test_probe_command_is_absolute() -> None:
    command = probe_command(parse_settings(TOML).ha)
    assert command.split()[0].startswith("/")


def test_sub_second_adverts_use_vrrp_v3_and_preempt_delay_starts_as_backup() -> None:
    ha = parse_settings(TOML + "advert_int = 0.2\npreempt_delay = 2\n").ha
    master, backup = nodes(ha)
    text = render(ha, master)
    assert "version 3" in text and "advert_int 0.2" in text
    assert "state BACKUP" in text and "priority 150" in text and "preempt_delay 2" in text
    assert "preempt_delay 2" in render(ha, backup)
    whole = render(parse_settings(TOML).ha, master)
    assert "advert_int 1\n" in whole and "version 3" not in whole and "preempt" not in whole


def test_nopreempt_on_both_nodes() -> None:
    ha = parse_settings(TOML + "nopreempt = true\n").ha
    for node in nodes(ha):
        text = render(ha, node)
        assert "nopreempt" in text and "state BACKUP" in text


@pytest.mark.parametrize(
    ("role", "extra"),
    [("master", ""), ("backup", ""), ("master", "advert_int = 0.2\npreempt_delay = 2\n"),
     ("backup", "nopreempt = true\n")],
)  # fmt: skip
def test_keepalived_accepts_generated_config(tmp_path: Path, role: str, extra: str) -> None:
    binary = shutil.which("keepalived")
    if binary is None:
        pytest.skip("keepalived not installed")
    # keepalived -t checks that the interface exists and is not loopback.
    interfaces = sorted(i for i in os.listdir("/sys/class/net") if i != "lo")
    if not interfaces:
        pytest.skip("no non-loopback interface to check against")
    (tmp_path / "callway.toml").write_text(TOML.replace("veth-lb", interfaces[0]) + extra)
    out = subprocess.run(
        [sys.executable, "-m", "callway", "keepalived", "-c", str(tmp_path), "--role", role],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    conf = tmp_path / "keepalived.conf"
    conf.write_text(out.stdout)
    check = subprocess.run([binary, "-t", "-f", str(conf)], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stderr + check.stdout
