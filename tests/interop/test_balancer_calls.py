"""The seed's topology: a balancer in front of two ``callway pbx`` nodes, real phones.

baresip 8005 and 8006 register through the balancer (REGISTER carries a Path
to it) and 8005 calls 8006; each plays a different sentence and each
recording must contain the other's (correlation and PESQ-NB, as in
``test_calls_audio.py``).

There is no shared location between the nodes yet (a later Redis issue), so
the call must land on the node holding the callee's registration:

* ``callway balancer`` runs algorithm 2 (To-URI hash): the INVITE to 8006
  and 8006's REGISTERs have the same To URI, so they reach the same node,
  whichever node the caller registered on.  Both nodes are in use.
* Kamailio runs the seed's ``ds_select_dst("1", "9")`` (weights); with
  weights 50/50 its round-robin over a shuffled slot table could put the
  call on either node, so its list sets no weights: Kamailio then always
  picks the first destination; node 2 is listed and probed, only taken by
  failover.  (``weight=0`` is refused: "weight 0 not in 1-100 range".)

The PBX nodes set Asterisk's ``support_path=yes`` on the AORs.  (callway pbx
stores the Path but does not yet send it as a Route set: its INVITE to a phone
goes to the balancer's address with no Route, so the Kamailio config, like
callway balancer, relays requests from a node (``ds_is_from_list``) to their
Request-URI.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.helpers.balancer_process import BalancerProcess, Node, run_balancer, run_kamailio
from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import Baresip, require_binary
from tests.interop.conftest import PbxFactory
from tests.interop.test_calls_audio import (
    CALL_SECONDS,
    SENTENCE_A,
    SENTENCE_B,
    assert_heard,
    recording,
    speech_wav,
    wait_event,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

# Asterisk's option for a PBX behind a proxy: keep the Path of each
# registration and send requests to the phone along it (RFC 3327).
SUPPORT_PATH = "".join(f"[{user}](+type=aor)\nsupport_path=yes\n" for user in ("8005", "8006"))

Front = Callable[[Path, list[Node]], AbstractContextManager[BalancerProcess]]


def callway_front(workdir: Path, nodes: list[Node]) -> AbstractContextManager[BalancerProcess]:
    return run_balancer(workdir, nodes, algorithm=2)


def kamailio_front(workdir: Path, nodes: list[Node]) -> AbstractContextManager[BalancerProcess]:
    require_binary("kamailio")
    weighted = [Node(nodes[0].uri, 0), Node(nodes[1].uri, 0)]
    return run_kamailio(workdir, weighted)


def holder(pbxs: list[PbxProcess], user: str) -> list[int]:
    """Indexes of the PBX nodes holding a registration of ``user``."""
    return [i for i, pbx in enumerate(pbxs) if pbx.wait_contacts(user, timeout=0.5)]


@pytest.mark.parametrize("front", [callway_front, kamailio_front], ids=["callway", "kamailio"])
def test_phones_behind_balancer_hear_each_other(
    pbx_factory: PbxFactory, tmp_path: Path, front: Front
) -> None:
    require_binary("baresip")
    pbxs = [pbx_factory(extra_pjsip=SUPPORT_PATH), pbx_factory(extra_pjsip=SUPPORT_PATH)]
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    nodes = [Node(pbx.uri, 50) for pbx in pbxs]
    with front(tmp_path / "lb", nodes) as balancer:
        caller = Baresip(tmp_path / "baresip-8005", "8005", "8005", balancer.sip_port)
        callee = Baresip(tmp_path / "baresip-8006", "8006", "8006", balancer.sip_port)
        caller.audio_in, callee.audio_in = sent_a, sent_b
        with caller, callee:
            caller.wait_registered()
            callee.wait_registered()
            where = {user: holder(pbxs, user) for user in ("8005", "8006")}
            print(f"registrations: {where}")
            assert all(len(nodes) == 1 for nodes in where.values()), where
            caller.dial(f"sip:8006@127.0.0.1:{balancer.sip_port}")
            wait_event(caller, "CALL_ESTABLISHED")
            wait_event(callee, "CALL_ESTABLISHED")
            time.sleep(CALL_SECONDS)
            caller.hangup()
            wait_event(callee, "CALL_CLOSED")
            wait_event(caller, "CALL_CLOSED")
        print(f"log of the balancer:\n{balancer.log_text()[-2000:]}")
    assert_heard(sent_a, recording(callee.rec_dir), "8006 hears 8005")
    assert_heard(sent_b, recording(caller.rec_dir), "8005 hears 8006")
