"""Carrier trunks: calls in, known by source address, and calls out, with digest auth.

Call centers take their customers' calls from a carrier's SIP trunk, which
never answers a digest challenge: Asterisk knows it by address
(res_pjsip_endpoint_identifier_ip).  sipp plays the trunk from 127.0.0.2
with an E.164 caller ID and calls 8006 (a sipp UAS) without credentials;
from 127.0.0.1 the same INVITE is challenged like any unknown caller.  Calls
out go through ``Dial(PJSIP/number@carrier)`` to a sipp carrier on 127.0.0.3
that challenges the PBX's INVITE; the PBX answers with the endpoint's
``outbound_auth`` (chan_pjsip's ``outbound_auth``, ``from_user``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import require_binary, run_sipp
from tests.helpers.ports import free_port_pair_block
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_sipp import R200, assert_idle, callee, caller, cdrs, finals, ok
from tests.interop.test_console import console

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

TRUNK = """\
[carrier]
type=endpoint
context=from-carrier
disallow=all
allow=ulaw
identify_by=ip

[carrier-ip]
type=identify
endpoint=carrier
match=127.0.0.2/32
"""

# The agent's phone shows who calls: the caller ID comes from the trunk's From
# (CALLERID(num)) and the dialplan may dress it up (CALLERID(name)).
TRUNK_DIALPLAN = """\
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})

[from-carrier]
exten => _80XX,1,Set(CALLERID(name)=Customer ${CALLERID(num)})
 same => n,Dial(PJSIP/${EXTEN})
"""


def test_a_trunk_known_by_its_address_calls_without_credentials(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    require_binary("sipp")
    pbx = pbx_factory(extra_pjsip=TRUNK, extensions=TRUNK_DIALPLAN)
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
    # The agent sees the customer's number, named by the dialplan.
    assert 'From: "Customer +15551234567" <sip:+15551234567@' in b.messages(), b.describe()
    (cdr,) = cdrs(pbx)  # the CDR's caller is CALLERID(num), as Asterisk's src
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == (
        "+15551234567", "8006", "ANSWERED"
    )
    assert cdr["clid"] == '"Customer +15551234567" <+15551234567>', cdr
    assert (cdr["channel"][:14], cdr["dcontext"]) == ("PJSIP/carrier-", "from-carrier"), cdr
    assert_idle(pbx)


TRUSTED_DIALPLAN = """\
[from-carrier]
exten => _80XX,1,Dial(PJSIP/${EXTEN})
"""


def test_a_trusted_trunk_asserts_the_caller_in_p_asserted_identity(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    """``trust_id_inbound=yes``: From is anonymous, the caller ID comes from the PAI."""
    require_binary("sipp")
    trusted = TRUNK.replace("identify_by=ip", "identify_by=ip\ntrust_id_inbound=yes")
    pbx = pbx_factory(extra_pjsip=trusted, extensions=TRUSTED_DIALPLAN)
    with callee(pbx, "call_uas.xml", tmp_path) as uas:
        trunk = run_sipp(
            "trunk_uac_pai.xml", f"127.0.0.1:{pbx.sip_port}", service="8006",
            extra_args=["-i", "127.0.0.2"], trace_dir=tmp_path / "trunk",
        )  # fmt: skip
        b = uas.result()
    ok(trunk)
    ok(b)
    assert 'From: "Jane Roe" <sip:+15551234567@' in b.messages(), b.describe()
    (cdr,) = cdrs(pbx)
    assert (cdr["caller"], cdr["clid"]) == ("+15551234567", '"Jane Roe" <+15551234567>'), cdr
    assert_idle(pbx)


def test_from_another_address_the_same_call_is_challenged(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    require_binary("sipp")
    pbx = pbx_factory(extra_pjsip=TRUNK, extensions=TRUNK_DIALPLAN)
    refused = run_sipp(
        "trunk_uac_refused.xml", f"127.0.0.1:{pbx.sip_port}", service="8006",
        trace_dir=tmp_path / "elsewhere",
    )  # fmt: skip
    ok(refused)
    assert finals(refused) == ["SIP/2.0 401 Unauthorized (INVITE)"], refused.describe()


OUTBOUND = """\
[carrier-out]
type=endpoint
context=from-external
disallow=all
allow=ulaw
outbound_auth=carrier-out-auth
aors=carrier-out
from_user=callcenter1
send_pai=yes

[carrier-out-auth]
type=auth
auth_type=userpass
username=callcenter1
password=s3cret

[carrier-out]
type=aor
contact=sip:127.0.0.3:{port}
"""

OUTBOUND_DIALPLAN = """\
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
exten => _9X.,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN:1}@carrier-out)
"""


# The carrier's address in the AOR is dead (nothing listens on 127.0.0.9): the
# call only goes through if it is sent to the outbound proxy, the sipp carrier.
VIA_PROXY = {
    "aors=carrier-out\n": "aors=carrier-out\noutbound_proxy=sip:127.0.0.3:{port}\\;lr\n",
    "contact=sip:127.0.0.3:{port}": "contact=sip:127.0.0.9:{dead}",
}


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "outbound_proxy"])
def test_an_outbound_call_through_a_carrier_answers_its_challenge(
    pbx_factory: PbxFactory, tmp_path: Path, proxied: bool
) -> None:
    """Dial(PJSIP/number@trunk): the number in the Request-URI, outbound_auth for the 401.

    The carrier checks the digest, the From's account (``from_user``) and the
    P-Asserted-Identity (``send_pai``): the agent's caller ID, 8005.  With
    ``outbound_proxy`` the INVITE keeps the carrier's URI and goes to the
    proxy, named in a Route (RFC 3261 §8.1.2).
    """
    require_binary("sipp")
    carrier_port = free_port_pair_block(1)
    conf = OUTBOUND
    for old, new in VIA_PROXY.items() if proxied else ():
        conf = conf.replace(old, new)
    pbx = pbx_factory(
        extra_pjsip=conf.format(port=carrier_port, dead=free_port_pair_block(1)),
        extensions=OUTBOUND_DIALPLAN,
    )
    with ThreadPoolExecutor(1) as pool:
        carrier = pool.submit(
            run_sipp, "trunk_uas_auth.xml", f"127.0.0.1:{pbx.sip_port}",
            local_port=carrier_port, extra_args=["-i", "127.0.0.3"], timeout=20,
            trace_dir=tmp_path / "carrier",
        )  # fmt: skip
        time.sleep(0.3)  # sipp binds its port before the INVITE comes
        agent = caller(pbx, "call_uac.xml", tmp_path, callee_user="915551234567")
        answered = carrier.result()
    ok(agent)
    ok(answered)
    assert R200 in finals(agent), agent.describe()
    invite = answered.messages().split("INVITE sip:15551234567@", 1)[1].split("\n\n", 1)[0]
    if proxied:
        assert f"Route: <sip:127.0.0.3:{carrier_port};lr>" in invite, invite
    else:
        assert "Route:" not in invite, invite
    assert_idle(pbx)


QUALIFIED = """\
[carrier-out]
type=endpoint
context=from-external
disallow=all
allow=ulaw
aors=carrier-out

[carrier-out]
type=aor
contact=sip:127.0.0.9:{dead}
qualify_frequency=1
qualify_timeout=0.5
outbound_proxy=sip:127.0.0.3:{port}\\;lr
"""


def wait_log(pbx: PbxProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in pbx.stderr_text():
        assert time.monotonic() < deadline, f"no {text!r} in the PBX's log"
        time.sleep(0.1)


def test_a_trunks_static_contact_is_qualified_and_skipped_once_unreachable(
    pbx_factory: PbxFactory, tmp_path: Path
) -> None:
    """An AOR's ``contact=`` with ``qualify_frequency``: pinged like a registered phone.

    The pings go through the AOR's ``outbound_proxy`` (the contact itself is
    dead): a sipp SBC answers one, the contact is Reachable; then it answers
    no more, the contact becomes Unavail and Dial skips it, as res_pjsip does.
    """
    require_binary("sipp")
    port, dead = free_port_pair_block(1), free_port_pair_block(1)
    with ThreadPoolExecutor(1) as pool:
        sbc = pool.submit(
            run_sipp, "options_uas.xml", f"127.0.0.1:{free_port_pair_block(1)}",
            local_port=port, extra_args=["-i", "127.0.0.3"], timeout=10,
            trace_dir=tmp_path / "sbc",
        )  # fmt: skip
        time.sleep(0.3)  # sipp binds its port before the first ping
        pbx = pbx_factory(
            extra_pjsip=QUALIFIED.format(port=port, dead=dead), extensions=OUTBOUND_DIALPLAN
        )
        contact = f"Contact carrier-out/sip:127.0.0.9:{dead} is now"
        wait_log(pbx, f"{contact} Reachable", timeout=5)
        answered = sbc.result()
    ok(answered)
    options = answered.messages().split("OPTIONS sip:127.0.0.9:", 1)[1].split("\n\n", 1)[0]
    assert f"Route: <sip:127.0.0.3:{port};lr>" in options, options
    wait_log(pbx, f"{contact} Unreachable", timeout=5)
    shown = console(pbx, "pjsip show contacts").stdout
    row = next(line for line in shown.splitlines() if f"sip:127.0.0.9:{dead}" in line)
    assert "carrier-out" in row and "Unavail" in row and "static" in row, shown
    agent = caller(pbx, "call_uac_rejected.xml", tmp_path, callee_user="915551234567")
    ok(agent)
    assert "is unreachable: skipped" in pbx.stderr_text()
    assert "status is 'CHANUNAVAIL'" in pbx.stderr_text()  # (the pings go on: not idle)
