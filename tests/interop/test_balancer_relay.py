"""``callway balancer --media-relay``: the balancer anchors media at an ng relay.

The seed's split (SEED.md §7) without Kamailio: ``callway balancer`` drives
the relay the way Kamailio's ``rtpengine_manage()`` does (offer on the
INVITE, answer on the 200, delete on the BYE), in front of one ``callway
pbx``, with ``callway relay`` (or Debian's rtpengine, the reference) on a
loopback address of its own (127.0.0.2):

* baresip 8005 calls 8006 through the balancer; both hear each other (the
  audio scoring of ``test_calls_audio.py``);
* the SDP each phone received names the relay's address and a port the
  relay's ``query`` lists; the relay holds two calls (phone-PBX, PBX-phone)
  with packets both ways on each;
* after the hang-up (by either phone) the relay holds no call; the same with
  ``--workers 2``.

Under load (sipp, 200 calls through the balancer to a sipp node), every
call gets its offer, answer and delete, and none is left at the relay.

A balancer whose relay does not answer forwards the SDP unchanged and the
call still works (media end to end), counted as ``media_relay_timeout``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.helpers.balancer_process import Node, SippServer, run_balancer
from tests.helpers.peers import Baresip, require_binary, run_sipp
from tests.helpers.ports import free_udp_port
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_audio import wait_event
from tests.interop.test_relay_ng import (
    RELAY_MEDIA_IP,
    SUPPORT_PATH,
    assert_relayed,
    call_through,
    ng_client,
    received_sdp,
    run_relay,
    run_rtpengine,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def media_toml(ng_port: int) -> str:
    return f'media_relay = "udp:127.0.0.1:{ng_port}"\n'


@pytest.mark.parametrize(
    ("relay_kind", "hangs_up", "workers"),
    [("callway", "caller", 1), ("callway", "callee", 2), ("rtpengine", "caller", 1)],
    ids=["callway", "callway-callee-hangs-up-2-workers", "rtpengine-reference"],
)
def test_call_through_balancer_and_media_relay(
    pbx_factory: PbxFactory, tmp_path: Path, relay_kind: str, hangs_up: str, workers: int
) -> None:
    """Either side's BYE deletes the call; with ``--workers 2`` each worker has its own client."""
    if relay_kind == "rtpengine":
        require_binary("rtpengine")
    run = run_relay if relay_kind == "callway" else run_rtpengine
    require_binary("baresip")
    pbx = pbx_factory(extra_pjsip=SUPPORT_PATH)
    with (
        run(tmp_path / "relay") as relay,
        ng_client(relay.ng_port) as ng,
        run_balancer(
            tmp_path / "lb",
            [Node(pbx.uri, 0)],
            algorithm=2,
            workers=workers,
            extra=media_toml(relay.ng_port),
        ) as balancer,
    ):
        call = call_through(tmp_path, relay, ng, balancer.sip_port, hangs_up)
        print(f"balancer log:\n{balancer.log_text()[-3000:]}")
    assert_relayed(call, relay.ports)


def test_silent_relay_leaves_sdp_unchanged(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    """No relay at the configured port: the call goes through, media end to end."""
    require_binary("baresip")
    pbx = pbx_factory(extra_pjsip=SUPPORT_PATH)
    nowhere = free_udp_port()
    with run_balancer(
        tmp_path / "lb", [Node(pbx.uri, 0)], algorithm=2, extra=media_toml(nowhere)
    ) as balancer:
        caller = Baresip(tmp_path / "baresip-8005", "8005", "8005", balancer.sip_port)
        callee = Baresip(tmp_path / "baresip-8006", "8006", "8006", balancer.sip_port)
        with caller, callee:
            caller.wait_registered()
            callee.wait_registered()
            caller.dial(f"sip:8006@127.0.0.1:{balancer.sip_port}")
            wait_event(caller, "CALL_ESTABLISHED")
            wait_event(callee, "CALL_ESTABLISHED")
            caller.hangup()
            wait_event(callee, "CALL_CLOSED")
        balancer.wait_log(r"media relay udp:127\.0\.0\.1:\d+ did not answer offer")
        sdp = received_sdp(callee, "INVITE")
        assert RELAY_MEDIA_IP not in sdp, sdp


def test_sipp_calls_through_balancer_and_relay(tmp_path: Path) -> None:
    """Many short calls: the fast-path split and the held messages keep every call whole."""
    require_binary("sipp")
    count = 200
    with (
        SippServer(tmp_path / "node", "lb_uas.xml") as node,
        run_relay(tmp_path / "relay", ports=400) as relay,
        ng_client(relay.ng_port) as ng,
        run_balancer(tmp_path / "lb", [Node(node.uri, 0)], extra=media_toml(relay.ng_port)) as lb,
    ):
        result = run_sipp(
            "lb_uac.xml", lb.target, service="8006", calls=count, timeout=40,
            extra_args=["-r", "100", "-rp", "1000", "-d", "10"], trace_dir=tmp_path / "uac",
        )  # fmt: skip
        assert result.returncode == 0, result.describe()
        deadline = time.monotonic() + 5.0
        while ng.calls() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ng.calls() == []
        log = relay.log_text()
        for command in ("offer", "answer", "delete"):
            done = len(re.findall(rf"ng {command} call-id=\S+ .*: ok;", log))
            assert done == count, (command, done)
        assert "did not answer" not in lb.log_text()
