"""Operating ``callway balancer``: the console (drain a node) and the alert webhook.

* ``callway console --socket STATE_DIR/callway.ctl -x "dispatcher set_state dx 1 URI"``
  drains a node as Kamailio's ``kamcmd dispatcher.set_state`` does: sipp's
  calls then all go to the other node; ``ap`` puts it back.
* A node that dies and comes back makes the balancer POST ``node_down`` then
  ``node_up`` to ``alert_url``, signed ``X-Callway-Signature: sha256=HMAC``
  over the body (an ``http.server`` plays the receiver).

Both run with one and with two worker processes: the console talks to the
primary, which must pass the drained state to the other worker at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers.balancer_process import BalancerProcess, Node, run_balancer
from tests.interop.test_balancer import NodeFactory, calls, nodes, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]
__all__ = ["nodes"]  # the fixture, shared with test_balancer

SECRET = "s3cret-for-the-test"


def dispatcher_row(balancer: BalancerProcess, uri: str) -> str:
    """The ``dispatcher list`` line of ``uri``."""
    shown = balancer.console("dispatcher list")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return next(line for line in shown.stdout.splitlines() if line.startswith(uri + " "))


@pytest.mark.parametrize("workers", [1, 2])
def test_console_drains_a_node_and_puts_it_back(
    nodes: NodeFactory, tmp_path: Path, workers: int
) -> None:
    a, b = nodes("a"), nodes("b")
    dests = [Node(a.uri, 50), Node(b.uri, 50)]
    with run_balancer(tmp_path / "lb", dests, workers=workers) as balancer:
        assert balancer.control_socket.exists()
        version = balancer.console("core show version")
        assert version.returncode == 0 and "balancer" in version.stdout, version.stdout
        assert re.match(r"A[PX]\b", dispatcher_row(balancer, a.uri).split()[1])
        # drain node a (kamcmd dispatcher.set_state dx 1 URI)
        drained = balancer.console(f"dispatcher set_state dx 1 {a.uri}")
        assert drained.returncode == 0, drained.stdout
        assert dispatcher_row(balancer, a.uri).split()[1] == "DX"
        result = calls(balancer, 100, tmp_path, rate=100, name="drained")
        assert result.returncode == 0, result.describe()
        assert wait_for(lambda: b.count("BYE") == 100), b.count("BYE")
        assert a.count("INVITE") == 0, "a drained node got calls"
        # back in service, probing
        back = balancer.console(f"dispatcher set_state ap 1 {a.uri}")
        assert back.returncode == 0, back.stdout
        assert dispatcher_row(balancer, a.uri).split()[1] == "AP"
        again = calls(balancer, 100, tmp_path, rate=100, name="back")
        assert again.returncode == 0, again.describe()
        assert wait_for(lambda: a.count("BYE") + b.count("BYE") == 200)
        assert a.count("BYE") >= 25, (a.count("BYE"), b.count("BYE"))
        # operator mistakes are refused with a usage line, exit status 1
        wrong = balancer.console("dispatcher set_state zz 1 all")
        assert wrong.returncode == 1 and "Usage" in wrong.stdout, wrong.stdout
        unknown = balancer.console(f"dispatcher set_state dx 1 sip:127.0.0.1:{a.port + 1}")
        assert unknown.returncode == 1 and "no destination" in unknown.stdout
        counters = balancer.console("stats")
        assert counters.returncode == 0 and "FORWARDED" in counters.stdout, counters.stdout
        total = next(line for line in counters.stdout.splitlines() if line.startswith("total"))
        print(counters.stdout)
        assert "traceback" not in balancer.log_text().lower()
    assert total


# --------------------------------------------------------------------------
# alert webhook
# --------------------------------------------------------------------------
class Receiver:
    """An HTTP server that records each POST: (path, headers, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((self.path, dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/callway"

    def events(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@pytest.mark.parametrize("workers", [1, 2])
def test_alert_webhook_gets_signed_node_down_then_node_up(
    nodes: NodeFactory, tmp_path: Path, receiver: Receiver, workers: int
) -> None:
    a, b = nodes("a"), nodes("b")
    dests = [Node(a.uri, 50), Node(b.uri, 50)]
    extra = f'alert_url = "{receiver.url}"\nalert_secret = "{SECRET}"\n'
    with run_balancer(tmp_path / "lb", dests, workers=workers, ping_interval=1.0,
                      ping_timeout=0.5, extra=extra) as balancer:  # fmt: skip
        time.sleep(1.5)  # a probing round with both nodes up: no alert
        assert receiver.posts == []
        a.kill()
        assert wait_for(lambda: len(receiver.posts) >= 1, timeout=6), balancer.log_text()
        nodes("a2", port=a.port)
        assert wait_for(lambda: len(receiver.posts) >= 2, timeout=6), balancer.log_text()
        time.sleep(0.5)
    events = receiver.events()
    print(json.dumps(events, indent=1))
    assert [e["event"] for e in events] == ["node_down", "node_up"]
    assert all(e["uri"] == a.uri and e["setid"] == 1 for e in events)
    for path, headers, body in receiver.posts:
        assert path == "/hooks/callway"
        assert headers["Content-Type"] == "application/json"
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Callway-Signature"], expected)
    assert isinstance(events[0]["time"], float) and events[0]["time"] <= events[1]["time"]
