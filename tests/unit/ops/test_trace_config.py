"""``[trace]`` settings and ``build_tracer``."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest

from callway.core.address import Address
from callway.ops.config import TraceSettings, build_tracer


def test_everything_off_builds_no_tracer() -> None:
    assert not TraceSettings().enabled
    assert build_tracer(TraceSettings()) is None


def test_the_documented_toml_section_constructs_settings() -> None:
    table = tomllib.loads(
        """
        [trace]
        pcap = "trace/all.pcap"
        pcap_max_mb = 100
        pcap_keep = 5
        per_call_dir = "trace/calls"
        hep = "10.0.0.5:9060"
        hep_id = 2001
        hep_password = "pw"
        """
    )["trace"]
    settings = TraceSettings(**table)
    assert settings.enabled and settings.hep_id == 2001


@pytest.mark.parametrize(
    "bad",
    [
        {"pcap_max_mb": -1},
        {"pcap_keep": -1},
        {"pcap_keep": "5"},
        {"hep_id": -1},
        {"hep": "10.0.0.5:notaport"},
        {"hep": "10.0.0.5:0"},
        {"pcap": 5},
        {"unknown_key": 1},
    ],
)
def test_bad_values_raise_type_error(bad: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        TraceSettings(**bad)


def test_relative_paths_resolve_against_the_config_dir(tmp_path: Path) -> None:
    tracer = build_tracer(
        TraceSettings(pcap="trace/all.pcap", per_call_dir="trace/calls"), base=tmp_path
    )
    assert tracer is not None
    tracer("recv", b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n", Address("udp", "127.0.0.1", 9))
    assert tracer.start_call("a") == tmp_path / "trace" / "calls" / "a.pcap"
    tracer.close()
    assert (tmp_path / "trace" / "all.pcap").stat().st_size > 24
    assert tracer.pcap is not None and tracer.pcap.max_bytes == 100 * 1024 * 1024


def test_hep_settings_reach_the_sender(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        port = collector.getsockname()[1]
        tracer = build_tracer(TraceSettings(hep=f"127.0.0.1:{port}", hep_id=42, hep_password="pw"))
        assert tracer is not None and tracer.hep is not None
        assert (tracer.hep.capture_id, tracer.hep.auth_key) == (42, "pw")
        assert tracer.pcap is None and tracer.per_call_dir is None
        tracer.close()
