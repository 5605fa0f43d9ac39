"""A carrier's trunk is identified by its source address (pjsip.conf ``type=identify``).

Call centers take their customers' calls from a carrier's SIP trunk, which
never answers a digest challenge: Asterisk knows it by address
(res_pjsip_endpoint_identifier_ip).  sipp plays the trunk from 127.0.0.2
with an E.164 caller ID and calls 8006 (a sipp UAS) without credentials;
from 127.0.0.1 the same INVITE is challenged like any unknown caller.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.peers import require_binary, run_sipp
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_sipp import R200, assert_idle, callee, cdrs, finals, ok

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TRUNK = """\
[carrier]
type=endpoint
context=from-external
disallow=all
allow=ulaw
identify_by=ip

[carrier-ip]
type=identify
endpoint=carrier
match=127.0.0.2/32
"""


def test_a_trunk_known_by_its_address_calls_without_credentials(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    require_binary("sipp")
    pbx = pbx_factory(extra_pjsip=TRUNK)
    with callee(pbx, "call_uas.xml", tmp_path) as uas:
        trunk = run_sipp(
            "trunk_uac.xml", f"127.0.0.1:{pbx.sip_port}", service="8006",
            extra_args=["-i", "127.0.0.2"], trace_dir=tmp_path / "trunk",
        )  # fmt: skip
        b = uas.result()
    ok(trunk)
    ok(b)
    assert R200 in finals(trunk), trunk.describe()
    assert not any(line.startswith("SIP/2.0 401") for line in finals(trunk)), trunk.describe()
    (cdr,) = cdrs(pbx)  # the call came from the endpoint its address names
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("carrier", "8006", "ANSWERED")
    assert_idle(pbx)


def test_from_another_address_the_same_call_is_challenged(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    require_binary("sipp")
    pbx = pbx_factory(extra_pjsip=TRUNK)
    refused = run_sipp(
        "trunk_uac_refused.xml", f"127.0.0.1:{pbx.sip_port}", service="8006",
        trace_dir=tmp_path / "elsewhere",
    )  # fmt: skip
    ok(refused)
    assert finals(refused) == ["SIP/2.0 401 Unauthorized (INVITE)"], refused.describe()
