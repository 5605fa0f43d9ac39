"""``callway balancer`` in front of sipp nodes: spreading, failover, 404, Path, reload.

The nodes are sipp UAS scenarios that echo Record-Route (``lb_uas.xml``) and
log each call's Call-ID, so a test counts the calls each node got; the caller
is ``lb_uac.xml``, which learns the route set from the 200 (the built-in
uac/uas cannot pass a record-routing proxy, PEERS.md).  The balancer probes
every destination each second (``probing_mode = 1``) so that failures are
seen within a test's time.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.helpers.balancer_process import (
    BalancerProcess,
    Node,
    SippServer,
    dispatcher_list,
    run_balancer,
)
from tests.helpers.peers import SippResult, require_binary, run_sipp
from tests.helpers.ports import free_port_pair_block

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

PING_INTERVAL = 1.0
PING_TIMEOUT = 0.5
NodeFactory = Callable[..., SippServer]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[NodeFactory]:
    """``nodes(name, scenario="lb_uas.xml", port=None)`` starts a sipp node."""
    require_binary("sipp")
    with ExitStack() as stack:

        def start(name: str, scenario: str = "lb_uas.xml", port: int | None = None) -> SippServer:
            server = SippServer(tmp_path / f"node-{name}", scenario, port=port)
            return stack.enter_context(server)

        yield start


def calls(
    balancer: BalancerProcess,
    count: int,
    tmp_path: Path,
    *,
    rate: int = 200,
    hold_ms: int = 10,
    timeout: float = 30,
    scenario: str = "lb_uac.xml",
    name: str = "uac",
    extra: tuple[str, ...] = (),
) -> SippResult:
    """``count`` calls from sipp to the balancer at ``rate`` calls per second."""
    return run_sipp(
        scenario, balancer.target, service="8006", calls=count, timeout=timeout,
        extra_args=["-r", str(rate), "-rp", "1000", "-d", str(hold_ms), *extra],
        trace_dir=tmp_path / f"sipp-{name}",
    )  # fmt: skip


def sipp_stat(result: SippResult, name: str) -> int:
    """A counter from sipp's final screen (``Successful call``, ``Failed call``)."""
    found = re.findall(rf"{name}\s+\|\s+\d+\s+\|\s+(\d+)", result.stdout)
    return int(found[-1]) if found else -1


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --------------------------------------------------------------------------
# 1. weights
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("weight_a", "weight_b", "workers"), [(50, 50, 1), (80, 20, 1), (50, 50, 2), (80, 20, 2)]
)
def test_1000_calls_are_spread_by_weight(
    nodes: NodeFactory, tmp_path: Path, weight_a: int, weight_b: int, workers: int
) -> None:
    a, b = nodes("a"), nodes("b")
    dests = [Node(a.uri, weight_a), Node(b.uri, weight_b)]
    with run_balancer(tmp_path / "lb", dests, workers=workers) as balancer:
        result = calls(balancer, 1000, tmp_path)
        assert result.returncode == 0, result.describe()
        assert wait_for(lambda: a.count("BYE") + b.count("BYE") >= 1000)
    got_a, got_b = a.count("BYE"), b.count("BYE")
    print(f"weights {weight_a}/{weight_b}: node a {got_a}, node b {got_b}")
    assert got_a + got_b == 1000
    assert abs(got_a - weight_a * 10) <= 50, (got_a, got_b)
    assert abs(got_b - weight_b * 10) <= 50, (got_a, got_b)
    assert "failed at" not in balancer.log_text()


# --------------------------------------------------------------------------
# 2. a node dies under load, then comes back
# --------------------------------------------------------------------------
def failovers(balancer: BalancerProcess) -> list[str]:
    return re.findall(r"INVITE failed at .*? trying .*? \(Call-ID (\S+)\)", balancer.log_text())


@pytest.mark.parametrize("workers", [1, 2])
def test_node_killed_under_load_fails_over_and_comes_back(
    nodes: NodeFactory, tmp_path: Path, workers: int
) -> None:
    a, b = nodes("a"), nodes("b")
    dests = [Node(a.uri, 50), Node(b.uri, 50)]
    probing = {"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT}
    lb = run_balancer(tmp_path / "lb", dests, workers=workers, **probing)
    with lb as balancer, ThreadPoolExecutor(1) as pool:
        # steady load: 40 calls/s for 6 s; node a dies 2 s in
        running = pool.submit(
            calls, balancer, 240, tmp_path, rate=40, hold_ms=50, name="during",
            extra=("-max_retrans", "3"),
        )  # fmt: skip
        time.sleep(2.0)
        a.kill()
        killed_at = time.monotonic()
        balancer.wait_log(rf"destination {re.escape(a.uri)} is DOWN", timeout=5)
        detected = time.monotonic() - killed_at
        during = running.result()
        # failed calls: only those already established on node a (their BYE is lost)
        failed = sipp_stat(during, "Failed call")
        retried = failovers(balancer)
        print(f"detected after {detected:.2f} s; failovers {len(retried)}; failed {failed}")
        assert detected <= PING_INTERVAL + PING_TIMEOUT + 1.0
        assert retried, "no INVITE was retried on the other node"
        assert set(retried) <= b.call_ids("BYE"), "a retried call did not complete on node b"
        assert 0 <= failed <= 10, during.describe()
        # after detection: no call goes to node a, none fails, none needs a retry
        retries_before = len(retried)
        after = calls(balancer, 200, tmp_path, rate=100, name="after")
        assert after.returncode == 0, after.describe()
        assert len(failovers(balancer)) == retries_before
        # node a comes back on the same port and gets calls again
        restarted = nodes("a2", port=a.port)
        balancer.wait_log(rf"destination {re.escape(a.uri)} is UP again", timeout=5)
        back = calls(balancer, 100, tmp_path, rate=100, name="back")
        assert back.returncode == 0, back.describe()
        assert wait_for(lambda: restarted.count("BYE") > 20), restarted.count("BYE")


# --------------------------------------------------------------------------
# 3. no node left
# --------------------------------------------------------------------------
def test_all_nodes_down_gives_404_within_one_probe_interval(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    a, b = nodes("a"), nodes("b")
    dests = [Node(a.uri, 50), Node(b.uri, 50)]
    with run_balancer(tmp_path / "lb", dests, ping_interval=PING_INTERVAL,
                      ping_timeout=PING_TIMEOUT) as balancer:  # fmt: skip
        ok = calls(balancer, 10, tmp_path, name="before")
        assert ok.returncode == 0, ok.describe()
        a.kill()
        b.kill()
        killed_at = time.monotonic()
        for node in (a, b):
            balancer.wait_log(rf"destination {re.escape(node.uri)} is DOWN", timeout=5)
        detected = time.monotonic() - killed_at
        started = time.monotonic()
        refused = calls(balancer, 5, tmp_path, scenario="lb_uac_404.xml", name="404", timeout=5)
        answered = time.monotonic() - started
    assert refused.returncode == 0, refused.describe()
    assert any("404 No destination" in line for line in refused.received()), refused.received()
    print(f"all nodes DOWN after {detected:.2f} s; five 404s in {answered:.2f} s")
    assert detected <= PING_INTERVAL + PING_TIMEOUT + 0.5
    assert answered < PING_INTERVAL


# --------------------------------------------------------------------------
# 4. REGISTER: Path and stickiness
# --------------------------------------------------------------------------
def registrations(node: SippServer) -> list[tuple[str, str]]:
    """(user, Path) of each REGISTER the registrar node logged."""
    out = []
    for line in node.actions():
        match = re.match(r"REGISTER sips?:([^@]*)@ PATH (.*)$", line)
        if match:
            out.append((match.group(1), match.group(2)))
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_register_carries_path_and_sticks_to_one_node(
    nodes: NodeFactory, tmp_path: Path, workers: int
) -> None:
    a, b = nodes("a", "lb_registrar.xml"), nodes("b", "lb_registrar.xml")
    dests = [Node(a.uri, 50), Node(b.uri, 50)]
    users = [f"70{n:02d}" for n in range(10)]
    with run_balancer(tmp_path / "lb", dests, workers=workers) as balancer:
        for user in users:
            result = run_sipp(
                "lb_register.xml", balancer.target, service=user, calls=3, timeout=10,
                local_port=free_port_pair_block(1), trace_dir=tmp_path / f"sipp-reg-{user}",
            )  # fmt: skip
            assert result.returncode == 0, result.describe()
    seen = {"a": registrations(a), "b": registrations(b)}
    print({name: sorted({u for u, _ in regs}) for name, regs in seen.items()})
    assert sum(len(regs) for regs in seen.values()) == 3 * len(users)
    for user in users:
        holders = [name for name, regs in seen.items() if any(u == user for u, _ in regs)]
        assert len(holders) == 1, f"{user} registered on {holders}"
    own = f"sip:127.0.0.1:{balancer.sip_port}"
    for _, path in seen["a"] + seen["b"]:
        assert own in path and ";lr" in path, path


# --------------------------------------------------------------------------
# 7. a broken list on reload
# --------------------------------------------------------------------------
def test_broken_list_on_reload_keeps_the_old_one(nodes: NodeFactory, tmp_path: Path) -> None:
    a, b = nodes("a"), nodes("b")
    dests = [Node(a.uri, 50), Node(b.uri, 50)]
    with run_balancer(tmp_path / "lb", dests) as balancer:
        broken = dispatcher_list(dests) + "1 sip:127.0.0.1:5999 0 0 weight=500\n"
        balancer.list_path.write_text(broken)
        balancer.reload()
        error = balancer.wait_log(r"reload failed, keeping the running list: (.*)")
        assert re.search(r"\b4\b", error), f"no line number 4 in: {error}"
        still = calls(balancer, 100, tmp_path, name="after-broken")
        assert still.returncode == 0, still.describe()
        assert wait_for(lambda: a.count("BYE") == b.count("BYE") == 50), (
            a.count("BYE"),
            b.count("BYE"),
        )
        # a good list is taken: only node a from now on
        balancer.list_path.write_text(dispatcher_list([Node(a.uri, 100)]))
        balancer.reload()
        balancer.wait_log(r"dispatcher list reloaded")
        only_a = calls(balancer, 50, tmp_path, name="after-good")
        assert only_a.returncode == 0, only_a.describe()
        assert wait_for(lambda: a.count("BYE") == 100)
        assert b.count("BYE") == 50


# --------------------------------------------------------------------------
# 8. the balancer answers OPTIONS itself
# --------------------------------------------------------------------------
def test_callway_probe_against_the_balancer_exits_0(nodes: NodeFactory, tmp_path: Path) -> None:
    a = nodes("a")
    with run_balancer(tmp_path / "lb", [Node(a.uri, 100)]) as balancer:
        uri = f"sip:s@127.0.0.1:{balancer.sip_port}"
        done = subprocess.run(
            [sys.executable, "-m", "callway", "probe", uri],
            capture_output=True, text=True, timeout=15, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        with contextlib.suppress(pytest.skip.Exception):
            sipsak = require_binary("sipsak")
            done = subprocess.run(
                [sipsak, "-D", "1", "-s", uri], capture_output=True, text=True, timeout=15,
                check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
    assert a.count("INVITE") == 0
