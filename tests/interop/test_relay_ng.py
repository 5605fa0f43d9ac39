"""``callway relay`` as the media relay of a real Kamailio (its ``rtpengine`` module).

The seed splits the media relay out of the PBX as its own service behind
Kamailio (SEED.md §7).  Here Debian's Kamailio runs the seed's dispatcher
config plus ``rtpengine_manage()`` (``bench/kamailio-rtpengine.cfg``), with
``rtpengine_sock`` pointed at ``callway relay``, in front of a ``callway
pbx``:

* Kamailio pings the relay at start-up and marks it usable
  (``kamcmd rtpengine.show all``: ``disabled: 0``); a Kamailio pointed at a
  port where nothing answers marks its relay disabled.
* baresip 8005 calls 8006 through Kamailio: both hear each other (the same
  audio scoring as ``test_calls_audio.py``), the SDP each phone receives
  names the relay's media address (127.0.0.2) and ports, the relay's
  ``query`` counts packets both ways on both calls (caller-PBX and
  PBX-callee), and after the hang-up the relay holds no call and every port
  it used can be bound again.
* Without Kamailio, over the ng socket: media is relayed between the
  addresses of the offer and the answer, a retransmitted command gets the
  first reply, and a call without media is deleted after ``--timeout``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from callway.ng.bencode import BValue, decode, encode
from tests.helpers.balancer_process import (
    KamailioProcess,
    Node,
    dispatcher_list,
    fill_kamailio_cfg,
)
from tests.helpers.managed import ManagedProcess, StartError, running
from tests.helpers.peers import Baresip, require_binary
from tests.helpers.ports import free_rtp_range, free_sip_port, free_udp_port
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

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

RELAY_MEDIA_IP = "127.0.0.2"  # a loopback address of its own: the phones' SDP must name it
RTPENGINE_CFG = Path(__file__).resolve().parents[2] / "bench" / "kamailio-rtpengine.cfg"
SUPPORT_PATH = "".join(f"[{user}](+type=aor)\nsupport_path=yes\n" for user in ("8005", "8006"))


# --------------------------------------------------------------------------
# callway relay as a process, and an ng client
# --------------------------------------------------------------------------
class RelayProcess(ManagedProcess):
    """``python -m callway relay --listen udp:127.0.0.1:P --media-ip IP --ports A-B``."""

    name = "callway relay"
    ready_marker = "callway relay ready"
    start_error = StartError

    def __init__(self, workdir: Path, ng_port: int, ports: tuple[int, int], timeout: float) -> None:
        super().__init__(workdir, ng_port)
        self.ports = ports
        self.timeout = timeout

    @property
    def ng_port(self) -> int:
        return self.sip_port

    @property
    def argv(self) -> list[str]:
        first, last = self.ports
        return [
            sys.executable, "-m", "callway", "relay", "--listen", f"udp:127.0.0.1:{self.ng_port}",
            "--media-ip", RELAY_MEDIA_IP, "--ports", f"{first}-{last}",
            "--timeout", str(self.timeout),
        ]  # fmt: skip


@contextlib.contextmanager
def run_relay(workdir: Path, *, timeout: float = 60.0, ports: int = 40) -> Iterator[RelayProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    relay = RelayProcess(workdir, free_udp_port(), free_rtp_range(ports), timeout)
    with running(relay) as started:
        yield started


class RtpengineProcess(ManagedProcess):
    """Debian's rtpengine 10.5 in userspace, the reference relay, on the same terms.

    ``--delete-delay=0``: like callway relay, a deleted call frees its ports at
    once (rtpengine keeps them 30 s by default).
    """

    name = "rtpengine"

    def __init__(self, workdir: Path, ng_port: int, ports: tuple[int, int], timeout: float) -> None:
        super().__init__(workdir, ng_port)
        self.ports = ports
        self.timeout = timeout

    @property
    def ng_port(self) -> int:
        return self.sip_port

    @property
    def argv(self) -> list[str]:
        first, last = self.ports
        return [
            require_binary("rtpengine"), "--config-file=none", "--table=-1",
            f"--interface={RELAY_MEDIA_IP}", f"--listen-ng=127.0.0.1:{self.ng_port}",
            f"--port-min={first}", f"--port-max={last}", "--foreground", "--log-stderr",
            "--delete-delay=0", f"--timeout={int(self.timeout)}",
        ]  # fmt: skip

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with ng_client(self.ng_port) as ng:
            ng.sock.settimeout(0.2)
            while time.monotonic() < deadline and self.running:
                with contextlib.suppress(OSError):
                    if ng("ping")[b"result"] == b"pong":
                        return
        self.stop()
        raise StartError(f"rtpengine did not answer ping:\n{self.log_text()[-4000:]}")


@contextlib.contextmanager
def run_rtpengine(workdir: Path, *, timeout: float = 60.0) -> Iterator[RtpengineProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    relay = RtpengineProcess(workdir, free_udp_port(), free_rtp_range(40), timeout)
    with running(relay) as started:
        yield started


class NgClient:
    """Sends ng commands over UDP like Kamailio's module does; decodes the replies."""

    _cookies = itertools.count(1)

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(3.0)

    def close(self) -> None:
        self.sock.close()

    def raw(self, datagram: bytes) -> bytes:
        self.sock.sendto(datagram, self.address)
        reply, _ = self.sock.recvfrom(65535)
        return reply

    def datagram(self, command: str, **keys: object) -> bytes:
        request = {"command": command, **{k.replace("_", "-"): v for k, v in keys.items()}}
        return b"t_%d_%d " % (id(self), next(self._cookies)) + encode(request)  # type: ignore[arg-type]

    def __call__(self, command: str, **keys: object) -> dict[bytes, BValue]:
        datagram = self.datagram(command, **keys)
        reply = self.raw(datagram)
        cookie, _, body = reply.partition(b" ")
        assert cookie == datagram.split(b" ", 1)[0]
        value = decode(body)
        assert isinstance(value, dict)
        return value

    def calls(self) -> list[str]:
        calls = self("list")[b"calls"]
        assert isinstance(calls, list)
        return [bytes(c).decode() for c in calls]  # type: ignore[arg-type]


@contextlib.contextmanager
def ng_client(port: int) -> Iterator[NgClient]:
    client = NgClient(port)
    try:
        yield client
    finally:
        client.close()


def relay_ports(query: dict[bytes, BValue]) -> list[int]:
    """Every ``local port`` a ``query`` reply names."""
    return [int(p) for p in re.findall(rb"10:local porti(\d+)e", encode(query))]  # type: ignore[arg-type]


def stream_stats(query: dict[bytes, BValue]) -> dict[str, int]:
    """Packets received from each tag's party (the first stream of each tag)."""
    tags = query[b"tags"]
    assert isinstance(tags, dict)
    out: dict[str, int] = {}
    for tag, entry in tags.items():
        medias = entry[b"medias"]  # type: ignore[index,call-overload]
        out[tag.decode()] = int(medias[0][b"streams"][0][b"stats"][b"packets"])
    return out


def cpu_seconds(process: ManagedProcess) -> float:
    """User + system CPU seconds of a running process (``/proc/PID/stat``)."""
    assert process.proc is not None
    stat = Path(f"/proc/{process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def ports_free(ports: Sequence[int]) -> list[int]:
    """The RTP and RTCP ports (of the RTP ports given) that cannot be bound on the relay's IP."""
    busy: list[int] = []
    for port in ports:
        for candidate in (port, port + 1):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                try:
                    sock.bind((RELAY_MEDIA_IP, candidate))
                except OSError:
                    busy.append(candidate)
    return busy


# --------------------------------------------------------------------------
# Kamailio with the rtpengine module
# --------------------------------------------------------------------------
@contextlib.contextmanager
def run_kamailio(workdir: Path, nodes: Sequence[Node], ng_port: int) -> Iterator[KamailioProcess]:
    """Kamailio with ``bench/kamailio-rtpengine.cfg`` over ``nodes``, its relay on ``ng_port``."""
    require_binary("kamailio")
    workdir.mkdir(parents=True, exist_ok=True)
    sip_port = free_sip_port()
    list_file = workdir / "dispatcher.list"
    list_file.write_text(dispatcher_list(nodes))
    ctl = workdir / "kamailio.ctl"
    cfg = fill_kamailio_cfg(RTPENGINE_CFG, PORT=sip_port, CHILDREN=2, LIST=list_file, PING=1,
                            DEBUG=1, NG=f"udp:127.0.0.1:{ng_port}", CTL=ctl)  # fmt: skip
    with running(KamailioProcess(workdir, sip_port, cfg, ctl=ctl)) as kamailio:
        time.sleep(0.3)  # the workers' start-up ping of the relay
        yield kamailio


# --------------------------------------------------------------------------
# Kamailio's view of the relay
# --------------------------------------------------------------------------
def test_kamailio_pings_callway_relay_and_marks_it_usable(tmp_path: Path) -> None:
    require_binary("kamcmd")
    nodes = [Node("sip:127.0.0.1:9", 0)]
    with run_relay(tmp_path / "relay") as relay:
        with run_kamailio(tmp_path / "kamailio", nodes, relay.ng_port) as kamailio:
            shown = kamailio.kamcmd("rtpengine.show", "all")
            print(shown)
            assert f"udp:127.0.0.1:{relay.ng_port}" in shown, shown
            assert re.search(r"disabled:\s*0\b", shown), shown
            pinged = kamailio.kamcmd("rtpengine.ping", "all")
            assert "success" in pinged, pinged
        relay.wait_log(r"ng ping call-id=None from-tag=None to-tag=None: pong", count=2)
    # control: a Kamailio whose relay does not answer marks it disabled
    with run_kamailio(tmp_path / "kamailio-2", nodes, free_udp_port()) as kamailio:
        deadline = time.monotonic() + 8.0  # its start-up pings time out (rtpengine_tout_ms 500)
        shown = kamailio.kamcmd("rtpengine.show", "all")
        while not re.search(r"disabled:\s*1\b", shown) and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = kamailio.kamcmd("rtpengine.show", "all")
        assert re.search(r"disabled:\s*1\b", shown), shown


# --------------------------------------------------------------------------
# a call through Kamailio + callway relay + callway pbx
# --------------------------------------------------------------------------
def received_sdp(phone: Baresip, start: str) -> str:
    """The body of the first message starting with ``start`` the phone received."""
    own = f"127.0.0.1:{phone.sip_port}"
    for message in phone.sip_trace_messages():
        if message.dst == own and message.start_line.startswith(start) and "v=0" in message.text:
            return message.text[message.text.index("v=0") :]
    raise AssertionError(
        f"{phone.user} received no {start!r} with SDP:\n{phone.log_text()[-6000:]}"
    )


@dataclasses.dataclass
class RelayedCall:
    """What one phone call through a proxy driving a relay left behind."""

    calls: list[str]  # the relay's calls while the phones talked
    queries: dict[str, BValue]  # each call's ``query`` reply
    left: list[str]  # the relay's calls after the hang-up
    cpu: float  # the relay's CPU-seconds over CALL_SECONDS
    invite_sdp: str  # what the callee was offered
    ok_sdp: str  # what the caller was answered
    sent: tuple[Path, Path]  # what 8005 and 8006 played
    heard: tuple[Path, Path]  # what 8005 and 8006 recorded


def call_through(
    tmp_path: Path, relay: ManagedProcess, ng: NgClient, proxy_port: int, hangs_up: str
) -> RelayedCall:
    """baresip 8005 calls 8006 through the proxy on ``proxy_port``; one of them hangs up."""
    sent_a = speech_wav(tmp_path / "a.wav", SENTENCE_A, voice="en-us")
    sent_b = speech_wav(tmp_path / "b.wav", SENTENCE_B, voice="en-gb")
    caller = Baresip(tmp_path / "baresip-8005", "8005", "8005", proxy_port)
    callee = Baresip(tmp_path / "baresip-8006", "8006", "8006", proxy_port)
    caller.audio_in, callee.audio_in = sent_a, sent_b
    with caller, callee:
        caller.wait_registered()
        callee.wait_registered()
        caller.dial(f"sip:8006@127.0.0.1:{proxy_port}")
        wait_event(caller, "CALL_ESTABLISHED")
        wait_event(callee, "CALL_ESTABLISHED")
        cpu = cpu_seconds(relay)
        time.sleep(CALL_SECONDS)
        cpu = cpu_seconds(relay) - cpu
        calls = ng.calls()
        queries = {call_id: ng("query", call_id=call_id) for call_id in calls}
        (caller if hangs_up == "caller" else callee).hangup()
        wait_event(callee, "CALL_CLOSED")
        wait_event(caller, "CALL_CLOSED")
    deadline = time.monotonic() + 5.0
    while ng.calls() and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"{relay.name} log:\n{relay.log_text()[-3000:]}")
    return RelayedCall(
        calls, queries, ng.calls(), cpu, received_sdp(callee, "INVITE"),
        received_sdp(caller, "SIP/2.0 200"), (sent_a, sent_b),
        (recording(caller.rec_dir), recording(callee.rec_dir)),
    )  # fmt: skip


def assert_relayed(call: RelayedCall, ports: tuple[int, int]) -> list[int]:
    """Two relay calls (phone 8005 <-> PBX, PBX <-> phone 8006), both heard, nothing left.

    Returns the RTP ports the relay used (in ``ports``); the phones were told them.
    """
    assert len(call.calls) == 2, call.calls
    used: list[int] = []
    for call_id, query in call.queries.items():
        stats = stream_stats(query)
        print(f"relay call {call_id}: packets received per tag {stats}, ports {relay_ports(query)}")
        assert len(stats) == 2 and all(n > 100 for n in stats.values()), (call_id, stats)
        used += [port for port in relay_ports(query) if port % 2 == 0]  # RTP (rtpengine: +RTCP)
    first, last = ports
    assert len(used) == 4 and all(first <= p <= last for p in used), used
    for sdp in (call.invite_sdp, call.ok_sdp):
        assert f"c=IN IP4 {RELAY_MEDIA_IP}" in sdp, sdp
        port = int(re.search(r"m=audio (\d+)", sdp).group(1))  # type: ignore[union-attr]
        assert port in used, (port, used)
    assert call.left == [], call.left
    assert_heard(call.sent[0], call.heard[1], "8006 hears 8005 through the relay")
    assert_heard(call.sent[1], call.heard[0], "8005 hears 8006 through the relay")
    return used


@pytest.mark.parametrize(
    ("relay_kind", "hangs_up"),
    [("callway", "caller"), ("callway", "callee"), ("rtpengine", "caller")],
    ids=["callway-caller-hangs-up", "callway-callee-hangs-up", "rtpengine-reference"],
)
def test_call_through_kamailio_and_callway_relay(
    pbx_factory: PbxFactory, tmp_path: Path, relay_kind: str, hangs_up: str
) -> None:
    """Either phone's BYE passes Kamailio (``delete``): the PBX's own BYE too.

    The same test with rtpengine as the relay shows the setup is the one
    operators run, and gives reference figures.
    """
    if relay_kind == "rtpengine":
        require_binary("rtpengine")  # Debian rtpengine-daemon
    run = run_relay if relay_kind == "callway" else run_rtpengine
    require_binary("baresip")
    pbx = pbx_factory(extra_pjsip=SUPPORT_PATH)
    with (
        run(tmp_path / "relay") as relay,
        ng_client(relay.ng_port) as ng,
        run_kamailio(tmp_path / "kamailio", [Node(pbx.uri, 0)], relay.ng_port) as kamailio,
    ):
        call = call_through(tmp_path, relay, ng, kamailio.sip_port, hangs_up)
    print(f"{relay.name}: {call.cpu:.3f} CPU-s for {CALL_SECONDS:g} s of 2 relayed calls (4 legs)")
    used = assert_relayed(call, relay.ports)
    assert ports_free(used) == [], "ports still bound after the calls were deleted"


# --------------------------------------------------------------------------
# the ng socket on its own
# --------------------------------------------------------------------------
def sdp_for(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def advertised(reply: dict[bytes, BValue]) -> tuple[str, int]:
    sdp = reply[b"sdp"]
    assert isinstance(sdp, bytes), reply
    host = re.search(rb"c=IN IP4 (\S+)", sdp).group(1).decode()  # type: ignore[union-attr]
    port = int(re.search(rb"m=audio (\d+)", sdp).group(1))  # type: ignore[union-attr]
    return host, port


def test_relay_forwards_media_between_offer_and_answer(tmp_path: Path) -> None:
    with (
        run_relay(tmp_path / "relay") as relay,
        ng_client(relay.ng_port) as ng,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as alice,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bob,
    ):
        for phone in (alice, bob):
            phone.bind(("127.0.0.1", 0))
            phone.settimeout(2.0)
        a_port, b_port = alice.getsockname()[1], bob.getsockname()[1]
        to_bob = advertised(ng("offer", call_id="m1", from_tag="alice", sdp=sdp_for(a_port)))
        to_alice = advertised(
            ng("answer", call_id="m1", from_tag="alice", to_tag="bob", sdp=sdp_for(b_port))
        )
        assert to_bob[0] == to_alice[0] == RELAY_MEDIA_IP
        rtp = bytes([0x80, 0]) + bytes(10) + b"hello"
        for n in range(5):
            alice.sendto(rtp + bytes([n]), to_alice)  # alice sends where the answer says
            data, source = bob.recvfrom(2048)
            assert data == rtp + bytes([n]) and source == to_bob  # from where the offer said
            bob.sendto(data[::-1], to_bob)
            back, source = alice.recvfrom(2048)
            assert back == data[::-1] and source == to_alice
        assert stream_stats(ng("query", call_id="m1")) == {"alice": 5, "bob": 5}
        assert ng("delete", call_id="m1", from_tag="alice")[b"result"] == b"ok"
        assert ng.calls() == []
        assert ports_free([to_bob[1], to_alice[1]]) == []


def test_retransmitted_command_gets_the_first_reply(tmp_path: Path) -> None:
    with run_relay(tmp_path / "relay") as relay, ng_client(relay.ng_port) as ng:
        datagram = ng.datagram("offer", call_id="r1", from_tag="A", sdp=sdp_for(4000))
        first = ng.raw(datagram)
        again = ng.raw(datagram)
        assert first == again
        assert ng.calls() == ["r1"]
        assert len(relay_ports(ng("query", call_id="r1"))) == 2  # one stream, two legs
        ng("delete", call_id="r1")
        relay.wait_log(r"ng delete call-id=r1")
        executed = re.findall(r"ng offer call-id=r1 ", relay.log_text())
        assert len(executed) == 1, relay.log_text()  # the second datagram was not carried out


def test_call_without_media_is_deleted_after_the_timeout(tmp_path: Path) -> None:
    with run_relay(tmp_path / "relay", timeout=2.0) as relay, ng_client(relay.ng_port) as ng:
        reply = ng("offer", call_id="t1", from_tag="A", sdp=sdp_for(4000))
        port = advertised(reply)[1]
        assert ng.calls() == ["t1"]
        started = time.monotonic()
        while ng.calls() and time.monotonic() - started < 6.0:
            time.sleep(0.1)
        waited = time.monotonic() - started
        print(f"deleted after {waited:.1f} s (timeout 2 s)")
        assert ng.calls() == [], "the silent call was not deleted"
        assert 1.5 <= waited <= 4.0, waited
        assert ports_free([port]) == []
        relay.wait_log(r"ng call t1 deleted")
