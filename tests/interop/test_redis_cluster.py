"""A PBX cluster over Redis: node failure, callbacks across nodes, rooms on one node.

Real processes only: ``redis-server``, two ``callway pbx`` nodes with
``[store] url = "redis://..."``, ``callway balancer`` in front where a test
needs it, and baresip phones / sipp.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.helpers.balancer_process import Node, dispatcher_list, run_balancer
from tests.helpers.pbx_process import DEMO
from tests.helpers.peers import Baresip, require_binary, run_sipp
from tests.helpers.redis_process import redis_server
from tests.interop.conftest import PbxFactory
from tests.interop.test_callback import BackEnd, callback_toml
from tests.interop.test_calls_audio import (
    SENTENCE_A,
    SENTENCE_B,
    assert_heard,
    speech_wav,
    wait_event,
)
from tests.interop.test_redis_store import console, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


def test_killed_node_registrations_still_reach_the_phone(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    """SIGKILL node A behind the balancer; node B still reaches 8005 (registered through A).

    The balancer hashes REGISTERs on the To URI, so the test first finds the
    node that took 8005's REGISTER ("A"), then makes A the balancer's first
    choice for calls (algorithm 8, priority; list reloaded) and kills it with
    SIGKILL.  A new call 8006 -> 8005 times out at A, fails over to B, which
    finds 8005 in its Redis mirror and sends the INVITE along 8005's Path.

    Flows through A: none to rebuild.  The phone's flow ends at the balancer,
    and the Path A stored names the balancer with the phone's real source
    address (``;received=``), not node A; so the binding stays usable as it is
    and no re-REGISTER is needed (8005's interval is 10 minutes, and the test
    checks that B never handled a REGISTER of 8005).
    """
    require_binary("baresip")
    with redis_server(tmp_path / "redis") as redis:
        toml = f'[store]\nurl = "{redis.url}"\n'
        pbxs = [pbx_factory(toml=toml), pbx_factory(toml=toml)]
        sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
        sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
        nodes = [Node(pbx.uri, 0) for pbx in pbxs]
        with run_balancer(tmp_path / "lb", nodes, algorithm=8) as balancer:
            a = Baresip(tmp_path / "a", "8005", "8005", balancer.sip_port, regint=600)
            b = Baresip(tmp_path / "b", "8006", "8006", balancer.sip_port, regint=600)
            a.audio_in, b.audio_in = sent_a, sent_b
            with a, b:
                a.wait_registered()
                b.wait_registered()
                node_a, node_b = sorted(pbxs, key=lambda p: "AOR '8005'" not in p.stderr_text())
                assert "AOR '8005'" in node_a.stderr_text()
                assert wait_for(lambda: "sip:8005" in console(node_b, "pjsip show contacts"))
                balancer.list_path.write_text(
                    dispatcher_list([Node(node_a.uri, 0, priority=10), Node(node_b.uri, 0)])
                )
                balancer.reload()
                balancer.wait_log("dispatcher list reloaded")
                node_a.kill()
                b.dial(f"sip:8005@127.0.0.1:{balancer.sip_port}")
                wait_event(a, "CALL_ESTABLISHED", timeout=20)
                wait_event(b, "CALL_ESTABLISHED")
                time.sleep(5)
                b.hangup()
                wait_event(a, "CALL_CLOSED")
                wait_event(b, "CALL_CLOSED")
                assert "new call" in node_b.stderr_text()
                assert "AOR '8005'" not in node_b.stderr_text()  # no re-REGISTER was needed
        first_a = sorted(a.rec_dir.glob("dump-*-dec.wav"))[0]
        assert_heard(sent_b, first_a, "8005 hears 8006 through node B")


def test_callback_across_nodes(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    """8006 offline: 8005 calls it on node A, 8006 registers on node B, the call goes through.

    Node A holds the caller and sees 8006's binding in its Redis mirror (the
    callback service polls the location), then rings 8006 and bridges.
    """
    require_binary("baresip")
    backend = BackEnd()
    try:
        with redis_server(tmp_path / "redis") as redis:
            toml = f'[store]\nurl = "{redis.url}"\n' + callback_toml(backend.url)
            node_a = pbx_factory(toml=toml)
            node_b = pbx_factory(toml=toml)
            sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
            sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
            caller = Baresip(tmp_path / "a", "8005", "8005", node_a.sip_port)
            callee = Baresip(tmp_path / "b", "8006", "8006", node_b.sip_port)
            caller.audio_in, callee.audio_in = sent_a, sent_b
            with caller:
                caller.wait_registered()
                caller.dial(f"sip:8006@127.0.0.1:{node_a.sip_port}")
                wait_event(caller, "CALL_RINGING")
                notice = backend.wait()
                assert notice["callee"] == "8006" and notice["caller"] == "8005"
                with callee:  # woken by the push, it registers on the *other* node
                    callee.wait_registered()
                    wait_event(callee, "CALL_ESTABLISHED", timeout=15)
                    wait_event(caller, "CALL_ESTABLISHED")
                    time.sleep(5)
                    caller.hangup()
                    wait_event(callee, "CALL_CLOSED")
            assert "new call" not in node_b.stderr_text()  # node A put it through
        first_b = sorted(callee.rec_dir.glob("dump-*-dec.wav"))[0]
        first_a = sorted(caller.rec_dir.glob("dump-*-dec.wav"))[0]
        assert_heard(sent_a, first_b, "8006 (on B) hears 8005 (on A)")
        assert_heard(sent_b, first_a, "8005 (on A) hears 8006 (on B)")
    finally:
        backend.close()


def test_room_lives_on_one_node_joiner_redirected(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    """Room 900 is claimed in Redis by node A; a joiner landing on node B gets a 302 to A.

    The room's key carries A's SIP address and a TTL refreshed while the room
    lives; once the room is empty the claim goes away.
    """
    require_binary("baresip")
    require_binary("sipp")
    dialplan = DEMO + "exten => 900,1,ConfBridge(900)\n"  # no Answer() first: a 302 stays possible
    with redis_server(tmp_path / "redis") as redis:
        toml = f'[store]\nurl = "{redis.url}"\n'
        node_a = pbx_factory(toml=toml, extensions=dialplan)
        node_b = pbx_factory(toml=toml, extensions=dialplan)
        a = Baresip(tmp_path / "a", "8005", "8005", node_a.sip_port)
        with a:
            a.wait_registered()
            a.dial(f"sip:900@127.0.0.1:{node_a.sip_port}")
            wait_event(a, "CALL_ESTABLISHED")
            assert wait_for(lambda: bool(redis.cli("GET", "callway:room:900").strip()))
            owner = redis.cli("GET", "callway:room:900")
            assert f"127.0.0.1:{node_a.sip_port}" in owner
            assert int(redis.cli("PTTL", "callway:room:900").strip()) > 0
            result = run_sipp(
                "call_uac_rejected.xml", f"127.0.0.1:{node_b.sip_port}", service="900",
                extra_args=["-au", "8005", "-ap", "8005"], timeout=10,
                trace_dir=tmp_path / "sipp-join",
            )  # fmt: skip
            assert result.returncode == 0, result.describe()
            messages = (tmp_path / "sipp-join" / "call_uac_rejected_messages.log").read_text()
            assert "SIP/2.0 302" in messages
            assert re.search(rf"Contact: <sip:900@127\.0\.0\.1:{node_a.sip_port}>", messages)
            assert "joined conference" not in node_b.stderr_text()
            a.hangup()
            wait_event(a, "CALL_CLOSED")
            assert wait_for(lambda: not redis.cli("GET", "callway:room:900").strip(), 10)
