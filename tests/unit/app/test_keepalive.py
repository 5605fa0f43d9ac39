"""The keep-alive shell: OPTIONS to the NAT binding, CRLF pings on stream connections."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from callway.app.keepalive import CRLF_PING, Keepalives
from callway.app.nat import NatPolicy
from callway.core.address import Address
from callway.pbx.location import Binding
from callway.pbx.model import Aor
from callway.pbx.qualify import ContactStatus
from callway.sip.message import Request, Response


class FakeConn:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class FakeManager:
    def __init__(self) -> None:
        self.nat = NatPolicy()
        self.user_agent = "callway-test"
        self.sent: list[tuple[Request, Address, Any]] = []

    def send_request(self, request: Request, dest: Address, handler: Any) -> None:
        self.sent.append((request, dest, handler))


def make(interval: int = 5) -> tuple[Keepalives, FakeManager, FakeConn, list[float], Binding]:
    conn = FakeConn()
    stack = SimpleNamespace(
        streams=[SimpleNamespace(connections={1: conn})],
        default_local=lambda transport: ("198.51.100.1", 5060),
    )
    manager = FakeManager()
    source = Address("tcp", "203.0.113.9", 40000, ("198.51.100.1", 5060), conn=7)
    binding = Binding("8005", "sip:8005@192.168.1.10:5060", 1e9, "cid", 1, source, 0.0)
    clock = [100.0]
    keepalives = Keepalives(
        stack,  # type: ignore[arg-type]
        manager,  # type: ignore[arg-type]
        aor_of={"8005": Aor("8005", qualify_frequency=30)}.get,
        lookup=lambda aor, uri: binding if (aor, uri) == ("8005", binding.uri) else None,
        keep_alive_interval=lambda: interval,
        clock=lambda: clock[0],
    )
    return keepalives, manager, conn, clock, binding


def test_options_go_to_the_registered_connection() -> None:
    keepalives, manager, _conn, clock, binding = make()
    keepalives.on_binding(binding)
    keepalives.tick(100.0)
    [(request, dest, handler)] = manager.sent
    assert request.method == "OPTIONS" and str(request.uri) == binding.uri
    assert dest is binding.source and dest.conn == 7  # the NAT binding / same connection
    assert request.via.host == "198.51.100.1" and request.via.transport.upper() == "TCP"
    clock[0] = 100.02
    handler(Response(100, "Trying"))  # provisional: nothing yet
    assert keepalives.status("8005", binding.uri) == "Unknown"
    handler(Response(200, "OK"))
    assert keepalives.qualifier.status("8005", binding.uri)[0] is ContactStatus.REACHABLE


def test_crlf_pings_every_interval() -> None:
    keepalives, _manager, conn, _clock, _binding = make(interval=5)
    keepalives.tick(100.0)
    assert conn.written == []
    keepalives.tick(104.9)
    assert conn.written == []
    keepalives.tick(105.0)
    assert conn.written == [CRLF_PING]
    keepalives.tick(110.0)
    assert conn.written == [CRLF_PING, CRLF_PING]


def test_crlf_pings_off_with_zero_interval() -> None:
    keepalives, _manager, conn, _clock, _binding = make(interval=0)
    for now in (100.0, 200.0, 300.0):
        keepalives.tick(now)
    assert conn.written == []
