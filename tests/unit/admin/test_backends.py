"""The PBX and balancer adapters read their applications (built, not started)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from callway.admin.backend import AdminBackend
from callway.app.admin_backends import BalancerBackend, PbxBackend
from callway.app.balancer import BalancerApp, BalancerSettings, Listen
from callway.app.pbx import PbxApp, PbxSettings
from callway.core.address import Address
from callway.pbx.location import Binding
from callway.store.cdr import CdrRow
from tests.helpers.pbx_process import pjsip_conf


def _typed(backend: AdminBackend) -> AdminBackend:
    return backend  # mypy checks both adapters against the Protocol here


def _pbx(tmp_path: Path) -> PbxApp:
    (tmp_path / "pjsip.conf").write_text(pjsip_conf(5099, tcp=False))
    (tmp_path / "extensions.conf").write_text("[from-external]\nexten => 1,1,Hangup()\n")
    return PbxApp(PbxSettings(config_dir=tmp_path, state_dir=tmp_path))


def test_pbx_backend_registrations_cdrs_reload(tmp_path: Path) -> None:
    async def main() -> None:
        app = _pbx(tmp_path)
        try:
            backend = _typed(PbxBackend(app))
            now = time.time()
            app.location.put(Binding("8005", "sip:8005@127.0.0.1:5070", now + 60, "c1", 1,
                                     Address("udp", "127.0.0.1", 5070), now,
                                     user_agent="sipp"))  # fmt: skip
            (reg,) = backend.registrations()
            assert (reg.aor, reg.source, reg.user_agent) == ("8005", "udp:127.0.0.1:5070", "sipp")
            assert 58 <= reg.expires_in <= 60
            for i in range(5):
                app.cdr.add(CdrRow(f"{i:08x}", "8005", "8006", 10.0 * i, None, 10.0 * i + 5,
                                   "BUSY", 5, 0))  # fmt: skip
            assert [c.uniqueid for c in backend.cdrs(limit=2)] == ["00000003", "00000004"]
            assert [c.end for c in backend.cdrs(since=25)] == [25.0, 35.0, 45.0]
            assert backend.cdrs(limit=0) == []
            assert backend.calls() == [] and backend.dispatcher_sets() == []
            with pytest.raises(KeyError):
                backend.set_destination_state("sip:x", "DX", 1)
            assert backend.reload() is True
            (tmp_path / "pjsip.conf").write_text("[broken\n")
            assert backend.reload() is False
            assert backend.node_info().role == "pbx"
        finally:
            await app.stop()

    asyncio.run(main())


def test_balancer_backend_states_and_set_state(tmp_path: Path) -> None:
    listing = tmp_path / "dispatcher.list"
    listing.write_text("1 sip:127.0.0.1:5071 0 0\n1 sip:127.0.0.1:5072 0 0\n")

    async def main() -> None:
        app = BalancerApp(BalancerSettings(listens=(Listen("udp", "127.0.0.1", 0),),
                                           list_path=listing))  # fmt: skip
        try:
            backend = _typed(BalancerBackend(app))
            dests = backend.dispatcher_sets()
            assert [(d.setid, d.uri) for d in dests] == [
                (1, "sip:127.0.0.1:5071"),
                (1, "sip:127.0.0.1:5072"),
            ]
            assert backend.set_destination_state("sip:127.0.0.1:5072", "DX", 1) == 1
            states = {d.uri: (d.state, d.usable) for d in backend.dispatcher_sets()}
            assert states["sip:127.0.0.1:5072"] == ("DX", False)
            with pytest.raises(KeyError):
                backend.set_destination_state("sip:127.0.0.9:5060", "DX", 1)
            with pytest.raises(ValueError):
                backend.set_destination_state("sip:127.0.0.1:5071", "ZZ", 1)
            assert backend.node_info().role == "balancer"
            assert "forwarded" in backend.node_info().counters
            assert backend.registrations() == [] and backend.calls() == []
            assert backend.reload() is True
        finally:
            await app.stop()

    asyncio.run(main())
