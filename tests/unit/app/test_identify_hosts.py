"""Host names in identify sections' ``match=``: resolved side by side, within a deadline."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import Any

import pytest

from callway.app.pbx import resolve_identify_hosts
from callway.config.pjsip import parse_pjsip

CONF = """
[carrier]
type=endpoint

[carrier-a]
type=identify
endpoint=carrier
match=gw.example.net,slow.example.net,192.0.2.7

[carrier-b]
type=identify
endpoint=carrier
match=gone.example.net,gw.example.net
"""


def test_names_resolve_side_by_side_and_a_slow_one_is_cut_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    asked: list[str] = []

    def getaddrinfo(host: str, port: Any, **_kw: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host == "slow.example.net":
            release.wait(5)  # a resolver that does not answer in time
        if host == "gone.example.net":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("198.51.100.1", 0)),
                (socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("2001:db8::1", 0, 0, 0))]  # fmt: skip

    config = parse_pjsip(CONF, "pjsip.conf")
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        found = resolve_identify_hosts(config, deadline=0.3, getaddrinfo=getaddrinfo)
    elapsed = time.monotonic() - began
    release.set()
    assert elapsed < 2.0, elapsed  # not the slow name's 5 s
    assert sorted(asked) == ["gone.example.net", "gw.example.net", "slow.example.net"]  # once each
    assert found["gw.example.net"] == (
        ipaddress.ip_network("198.51.100.1/32"), ipaddress.ip_network("2001:db8::1/128")
    )  # fmt: skip
    assert found["slow.example.net"] == () and found["gone.example.net"] == ()
    text = caplog.text
    assert "identify carrier-a: slow.example.net did not resolve within 0.3 s" in text
    assert "identify carrier-b: cannot resolve gone.example.net" in text


def test_no_names_no_lookup() -> None:
    config = parse_pjsip(CONF.replace("gw.example.net,slow.example.net,", "").replace(
        "match=gone.example.net,gw.example.net", "match=10.0.0.0/8"), "pjsip.conf")  # fmt: skip

    def getaddrinfo(*_args: Any, **_kw: Any) -> list[tuple[Any, ...]]:
        raise AssertionError("nothing to resolve")

    assert resolve_identify_hosts(config, getaddrinfo=getaddrinfo) == {}
