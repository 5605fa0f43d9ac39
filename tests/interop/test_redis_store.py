"""PBX nodes share registrations through a real redis-server.

8005 registers on node A, 8006 on node B; each node sees both (the bindings
are Redis keys with a TTL); calls in both directions connect; when Redis goes
away the nodes keep serving and resynchronise when it is back.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import require_binary, run_sipp
from tests.helpers.ports import free_port_pair_block
from tests.helpers.redis_process import redis_server
from tests.interop.conftest import BaresipFactory, PbxFactory

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


def console(pbx: PbxProcess, command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "callway", "console", "-c", str(pbx.config_dir), "-x", command],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    return result.stdout


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def register(pbx: PbxProcess, user: str, tmp_path: Path, expires: str = "") -> None:
    scenario = "register_auth.xml"
    result = run_sipp(
        scenario, f"127.0.0.1:{pbx.sip_port}", local_port=free_port_pair_block(1), service=user,
        extra_args=["-au", user, "-ap", user], timeout=10, trace_dir=tmp_path / f"sipp-{user}",
    )  # fmt: skip
    assert result.returncode == 0, result.describe()


def test_registrations_shared_and_ttl(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("sipp")
    with redis_server(tmp_path / "redis") as redis:
        toml = f'[store]\nurl = "{redis.url}"\n'
        node_a = pbx_factory(toml=toml)
        node_b = pbx_factory(toml=toml)
        register(node_a, "8005", tmp_path)
        assert wait_for(lambda: "sip:8005@" in console(node_b, "pjsip show contacts"))
        keys = redis.cli("--scan", "--pattern", "callway:reg:8005:*").split()
        assert len(keys) == 1
        ttl = int(redis.cli("PTTL", keys[0]).strip())
        assert 0 < ttl <= 3600 * 1000  # expiry is enforced by the data
        node_a.stop()  # a dead node's registrations stay valid for the others
        time.sleep(0.5)
        assert "sip:8005@" in console(node_b, "pjsip show contacts")


def test_calls_between_nodes(
    pbx_factory: PbxFactory, baresip_factory: BaresipFactory, tmp_path: Path
) -> None:
    require_binary("baresip")
    with redis_server(tmp_path / "redis") as redis:
        toml = f'[store]\nurl = "{redis.url}"\n'
        node_a = pbx_factory(toml=toml)
        node_b = pbx_factory(toml=toml)
        a = baresip_factory(user="8005", password="8005", registrar_port=node_a.sip_port)
        b = baresip_factory(user="8006", password="8006", registrar_port=node_b.sip_port)
        a.wait_registered()
        b.wait_registered()
        assert wait_for(lambda: "sip:8005" in console(node_b, "pjsip show contacts"))
        assert wait_for(lambda: "sip:8006" in console(node_a, "pjsip show contacts"))
        for caller, callee_user, node in ((b, "8005", node_b), (a, "8006", node_a)):
            caller.dial(f"sip:{callee_user}@127.0.0.1:{node.sip_port}")
            established = wait_for(
                lambda c=caller: "ESTABLISHED" in c.command("listcalls")["data"], 10
            )
            assert established, node.stderr_text()[-3000:]
            caller.hangup()
            assert wait_for(lambda c=caller: "(0)" in c.command("listcalls")["data"], 10)


def test_redis_outage_and_reconnect(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("sipp")
    with redis_server(tmp_path / "redis") as redis:
        toml = f'[store]\nurl = "{redis.url}"\n'
        node = pbx_factory(toml=toml)
        redis.stop()
        register(node, "8005", tmp_path)  # still serves while Redis is away
        assert wait_for(lambda: "redis unavailable" in node.stderr_text(), 10)
        redis.start()
        assert wait_for(lambda: bool(redis.cli("--scan", "--pattern", "callway:reg:8005:*")
                                     .strip()), 20)  # fmt: skip


def test_calls_through_balancer_over_shared_nodes(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    """Balancer (weights 50/50) over two PBX nodes sharing Redis: any node reaches any phone.

    The INVITE lands on either node whatever node holds the callee's
    registration; the node sends it along the callee's Path (through the
    balancer, which knows the phone's real address) and both hear each other.
    """
    require_binary("baresip")
    from tests.helpers.balancer_process import Node, run_balancer
    from tests.helpers.peers import Baresip
    from tests.interop.test_calls_audio import (
        CALL_SECONDS,
        SENTENCE_A,
        SENTENCE_B,
        assert_heard,
        speech_wav,
        wait_event,
    )

    with redis_server(tmp_path / "redis") as redis:
        toml = f'[store]\nurl = "{redis.url}"\n'
        pbxs = [pbx_factory(toml=toml), pbx_factory(toml=toml)]
        sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
        sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
        nodes = [Node(pbx.uri, 50) for pbx in pbxs]
        with run_balancer(tmp_path / "lb", nodes, algorithm=9) as balancer:
            a = Baresip(tmp_path / "a", "8005", "8005", balancer.sip_port)
            b = Baresip(tmp_path / "b", "8006", "8006", balancer.sip_port)
            a.audio_in, b.audio_in = sent_a, sent_b
            with a, b:
                a.wait_registered()
                b.wait_registered()
                assert wait_for(lambda: all("sip:8005" in console(p, "pjsip show contacts")
                                            and "sip:8006" in console(p, "pjsip show contacts")
                                            for p in pbxs))  # fmt: skip
                calls = ((a, b, "8006", CALL_SECONDS), (b, a, "8005", 2), (a, b, "8006", 2))
                for caller, callee, user, seconds in calls:
                    caller.dial(f"sip:{user}@127.0.0.1:{balancer.sip_port}")
                    wait_event(caller, "CALL_ESTABLISHED")
                    wait_event(callee, "CALL_ESTABLISHED")
                    time.sleep(seconds)
                    caller.hangup()
                    wait_event(callee, "CALL_CLOSED")
                    wait_event(caller, "CALL_CLOSED")
                used = [p.stderr_text().count("new call") for p in pbxs]
                print(f"calls per node: {used}")
        # Every call answered; the first one's recordings are checked both ways.
        first_b = sorted(b.rec_dir.glob("dump-*-dec.wav"))[0]
        first_a = sorted(a.rec_dir.glob("dump-*-dec.wav"))[0]
        assert_heard(sent_a, first_b, "8006 hears 8005")
        assert_heard(sent_b, first_a, "8005 hears 8006")
