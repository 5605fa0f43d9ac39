"""NAT traversal through real Linux NATs, in network namespaces this module creates.

Topology (``tests/helpers/netns.py``; the "internet" is the lab's 10.a.b.0/24)::

    pub  .1   callway pbx (UDP+TCP 5060, RTP relay), callway stun :3478, coturn :3479
    n1   .11  NAT router: MASQUERADE out of eth0 <- 192.168.1.0/24 <- phone ns "n1ph"
    n2   .12  NAT router: MASQUERADE out of eth0 <- 192.168.1.0/24 <- phone ns "n2ph"
    evil .66  a third host on the internet (RTP injection)

Both phones have the *same* private address (192.168.1.10) behind different
NATs, as two hotel guests would.  Each router's conntrack UDP timeouts are 10
s, so a NAT mapping nobody refreshes is gone after 10 s: the PBX's OPTIONS
qualify (``qualify_frequency=3``) has to keep the phones reachable, which a
control flow without keep-alives shows being cut.

Shown here (issue 7):
* Debian's ``stun`` client behind NAT gets the NAT's public address from
  ``callway stun``; callway's own STUN client gets the same mapping from
  ``callway stun`` and from coturn;
* 8005 and 8006 register through their NATs, 8005 calls 8006 after the NAT
  timeout passed, both hear each other for longer than the timeout, and the
  hang-up crosses the NAT; 8006 has ``rewrite_contact=yes``;
* RTP injected from a third address during the call is not relayed, and the
  injector gets nothing back (no hijack);
* a phone registered over TCP behind NAT gets its call on that connection.
"""

from __future__ import annotations

import asyncio
import math
import re
import socket
import sqlite3
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callway.transport.stun_client import stun_mapped_address
from tests.helpers.netns import Host, Lab, Process, require_netns
from tests.helpers.peers import Baresip, in_netns, require_binary
from tests.interop.test_calls_audio import (
    SENTENCE_A,
    SENTENCE_B,
    assert_heard,
    recording,
    speech_wav,
    wait_event,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]

NAT_TIMEOUT = 10  # seconds: nf_conntrack_udp_timeout and _stream in the routers
QUALIFY = 3
SIP_PORT = 5060
STUN_PORT = 3478
TURN_PORT = 3479
PHONE = "192.168.1.10"
CALL_SECONDS = NAT_TIMEOUT + 3  # the call outlives a NAT mapping nobody refreshes


def user_sections(user: str, options: str = "", aor_options: str = "") -> str:
    return f"""
[{user}]
type=endpoint
context=from-external
disallow=all
allow=ulaw
auth={user}
aors={user}
rtp_symmetric=yes
{options}
[{user}]
type=auth
auth_type=userpass
username={user}
password={user}

[{user}]
type=aor
max_contacts=1
remove_existing=yes
qualify_frequency={QUALIFY}
qualify_timeout=2
{aor_options}
"""


def pjsip_conf(public: str) -> str:
    head = f"""
[global]
type=global
keep_alive_interval=5

[transport-udp]
type=transport
protocol=udp
bind={public}:{SIP_PORT}

[transport-tcp]
type=transport
protocol=tcp
bind={public}:{SIP_PORT}
"""
    return (
        head
        + user_sections("8005")
        + user_sections("8006", "rewrite_contact=yes")
        + user_sections("8007", "transport=transport-tcp")
    )


EXTENSIONS = """\
[from-external]
exten => _80XX,1,NoOp()
 same => n,Dial(PJSIP/${EXTEN})
"""


@dataclass
class NatLab:
    lab: Lab
    workdir: Path
    pub: Host
    nat1: Host
    phone1: Host
    nat2: Host
    phone2: Host
    evil: Host
    pbx: Process
    config_dir: Path

    @property
    def public(self) -> str:
        return self.pub.address

    def phone(self, host: Host, user: str, *, transport: str = "udp", audio: Path | None = None,
              sip_port: int = 5070, rtp_first: int = 30000) -> Baresip:  # fmt: skip
        peer = Baresip(
            self.workdir / f"baresip-{user}", user, user, SIP_PORT, registrar_host=self.public,
            transport=transport, regint=600, bind_host=host.address, netns=host.ns,
            sip_port=sip_port, rtp_ports=(rtp_first, rtp_first + 9),
        )  # fmt: skip
        if audio is not None:
            peer.audio_in = audio
        return peer

    def contacts(self, aor: str, timeout: float = 3.0) -> list[sqlite3.Row]:
        """The stored bindings of ``aor`` (the PBX writes SQLite in batches: poll)."""
        deadline = time.monotonic() + timeout
        while True:
            conn = sqlite3.connect(self.config_dir / "callway.sqlite", timeout=5)
            conn.row_factory = sqlite3.Row
            try:
                rows = list(conn.execute("SELECT * FROM contacts WHERE aor = ?", (aor,)))
            finally:
                conn.close()
            if rows or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def wait_pbx_log(self, needle: str, timeout: float = 10.0) -> None:
        self.pbx.wait_log(needle, timeout)


@pytest.fixture(scope="module")
def nat_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatLab]:
    require_netns()
    require_binary("iptables")
    workdir = tmp_path_factory.mktemp("nat")
    lab = Lab(workdir)
    try:
        pub = lab.add_host("pub", 1)
        nat1, phone1 = lab.add_nat("n1", 11)
        nat2, phone2 = lab.add_nat("n2", 12)
        evil = lab.add_host("evil", 66)
        for router in (nat1, nat2):
            found = router.conntrack_timeouts(NAT_TIMEOUT, NAT_TIMEOUT)
            assert set(found.values()) == {NAT_TIMEOUT}, found
        config_dir = workdir / "pbx"
        config_dir.mkdir()
        (config_dir / "pjsip.conf").write_text(pjsip_conf(pub.address))
        (config_dir / "extensions.conf").write_text(EXTENSIONS)
        (config_dir / "callway.toml").write_text(
            f'[rtp]\nbind = "{pub.address}"\nstart = 20000\nend = 20100\n'
        )
        pbx = pub.start("pbx", sys.executable, "-m", "callway", "pbx", "-c", str(config_dir))
        pbx.wait_log("callway pbx ready", timeout=15)
        stun = pub.start("stun", sys.executable, "-m", "callway", "stun",
                         "--listen", f"{pub.address}:{STUN_PORT}")  # fmt: skip
        stun.wait_log("listening", timeout=10)
        yield NatLab(lab, workdir, pub, nat1, phone1, nat2, phone2, evil, pbx, config_dir)
    except BaseException:
        print(lab.logs(), file=sys.stderr)
        raise
    finally:
        lab.close()


# --------------------------------------------------------------------------
# STUN through the NAT
# --------------------------------------------------------------------------
def test_debian_stun_client_sees_the_nat_public_address(nat_lab: NatLab) -> None:
    require_binary("stun")
    done = nat_lab.phone1.run(
        "stun", f"{nat_lab.public}:{STUN_PORT}", "-v", "-p", "4500", check=False, timeout=30
    )
    output = done.stdout + done.stderr
    mapped = set(re.findall(r"MappedAddress = ([\d.]+):(\d+)", output))
    assert mapped, output
    hosts = {host for host, _port in mapped}
    assert hosts == {nat_lab.nat1.address}, output  # the router's WAN address, not 192.168.1.10


def _mapped_from(ns: str, servers: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """callway's STUN client, on one UDP socket made inside namespace ``ns``."""
    with in_netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((PHONE, 0))

    async def ask() -> list[tuple[str, int]]:
        found = []
        for server in servers:
            mapped = await stun_mapped_address(server, sock, rto=0.2, rc=4)
            found.append((mapped.host, mapped.port))
        return found

    try:
        return asyncio.run(ask())
    finally:
        sock.close()


def test_callway_stun_client_agrees_with_coturn(nat_lab: NatLab) -> None:
    turnserver = require_binary("turnserver")
    coturn = nat_lab.pub.start(
        "coturn", turnserver, "-n", "--listening-ip", nat_lab.public,
        "--listening-port", str(TURN_PORT), "--no-tls", "--no-dtls", "--no-cli",
        "--lt-cred-mech", "--user", "u:p", "--realm", "r", "--log-file", "stdout",
        "--pidfile", str(nat_lab.workdir / "turnserver.pid"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                found = _mapped_from(
                    nat_lab.phone1.ns,
                    [(nat_lab.public, TURN_PORT), (nat_lab.public, STUN_PORT)],
                )
                break
            except OSError:
                if time.monotonic() > deadline or not coturn.running:
                    raise
                time.sleep(0.3)
    finally:
        coturn.stop()
    from_coturn, from_callway = found
    assert from_coturn == from_callway, found
    assert from_callway[0] == nat_lab.nat1.address, found


# --------------------------------------------------------------------------
# calls through two NATs
# --------------------------------------------------------------------------
def relay_port(phone: Baresip, public: str) -> int:
    """The PBX relay port in the SDP the PBX sent to ``phone`` (its baresip trace)."""
    for message in phone.sip_trace_messages():
        if message.src.startswith(f"{public}:") and "m=audio" in message.text:
            match = re.search(r"^m=audio (\d+)", message.text, re.MULTILINE)
            if match:
                return int(match.group(1))
    raise AssertionError(f"no SDP from the PBX in {phone.user}'s trace")


def ulaw_tone(frequency: float, count: int) -> list[bytes]:
    """``count`` 20 ms G.711 u-law payloads of a full-scale tone."""
    from callway.rtp.g711 import ulaw_encode

    payloads = []
    for n in range(count):
        samples = [
            int(30000 * math.sin(2 * math.pi * frequency * (n * 160 + i) / 8000))
            for i in range(160)
        ]
        payloads.append(ulaw_encode(struct.pack(f"<{len(samples)}h", *samples)))
    return payloads


class Injector:
    """Raw RTP from the "evil" host to the PBX's relay ports; counts what comes back."""

    def __init__(self, host: Host) -> None:
        with in_netns(host.ns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host.address, 0))
        self.sock.setblocking(False)
        self.received = 0

    def blast(self, targets: list[tuple[str, int]], seconds: float) -> int:
        payloads = ulaw_tone(3000.0, int(seconds * 50))
        sent = 0
        for seq, payload in enumerate(payloads):
            header = struct.pack("!BBHII", 0x80, 0, 1000 + seq, 160 * seq, 0x0BADBEEF)
            for target in targets:
                self.sock.sendto(header + payload, target)
                sent += 1
            self.drain()
            time.sleep(0.02)
        return sent

    def drain(self) -> None:
        while True:
            try:
                self.sock.recv(2048)
            except BlockingIOError:
                return
            self.received += 1

    def close(self) -> None:
        self.sock.close()


def control_flow_expires(lab: NatLab) -> tuple[socket.socket, socket.socket, tuple[str, int]]:
    """A UDP flow through NAT 2 with no keep-alives: answered once, then left alone."""
    with in_netns(lab.pub.ns):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with in_netns(lab.phone2.ns):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((lab.public, 9999))
    client.bind((PHONE, 4600))
    server.settimeout(5)
    client.settimeout(5)
    client.sendto(b"hello", (lab.public, 9999))
    _data, mapped = server.recvfrom(100)
    server.sendto(b"first", mapped)
    assert client.recv(100) == b"first"  # the mapping works while fresh
    return server, client, mapped


def test_two_phones_behind_nat_call_past_the_nat_timeout(nat_lab: NatLab) -> None:
    require_binary("baresip")
    work = nat_lab.workdir
    sent_a = speech_wav(work / "a.wav", SENTENCE_A, voice="en-us", total=60)
    sent_b = speech_wav(work / "b.wav", SENTENCE_B, voice="en-gb", total=60)
    public = nat_lab.public
    with (
        nat_lab.phone(nat_lab.phone1, "8005", audio=sent_a) as caller,
        nat_lab.phone(nat_lab.phone2, "8006", audio=sent_b) as callee,
    ):
        caller.wait_registered()
        callee.wait_registered()
        server, client, mapped = control_flow_expires(nat_lab)
        registered = time.monotonic()
        # The REGISTERs came through the NATs: the bindings hold the routers' addresses.
        [row_a] = nat_lab.contacts("8005")
        [row_b] = nat_lab.contacts("8006")
        assert nat_lab.nat1.address in row_a["source"], dict(row_a)
        assert nat_lab.nat2.address in row_b["source"], dict(row_b)
        assert PHONE in row_a["uri"], dict(row_a)  # as registered
        assert f"@{nat_lab.nat2.address}:" in row_b["uri"], dict(row_b)  # rewrite_contact=yes
        nat_lab.wait_pbx_log("Contact 8005/", timeout=QUALIFY + 3)
        nat_lab.wait_pbx_log("Contact 8006/", timeout=QUALIFY + 3)
        assert "is now Reachable" in nat_lab.pbx.log_text()

        # Let a whole NAT timeout pass with no REGISTER (regint 600): only the
        # PBX's OPTIONS keep the phones' mappings alive.
        time.sleep(max(0.0, NAT_TIMEOUT + 3 - (time.monotonic() - registered)))
        server.sendto(b"late", mapped)
        with pytest.raises(TimeoutError):
            client.recv(100)  # the control flow's mapping expired: the NAT timeout is real
        server.close()
        client.close()
        assert "is now Unreachable" not in nat_lab.pbx.log_text()

        caller.dial(f"sip:8006@{public}:{SIP_PORT}")
        wait_event(caller, "CALL_ESTABLISHED", timeout=10)
        wait_event(callee, "CALL_ESTABLISHED", timeout=5)
        established = time.monotonic()
        # Mid-call, a third host sprays RTP at both relay ports.
        time.sleep(1.0)
        injector = Injector(nat_lab.evil)
        try:
            targets = [(public, relay_port(caller, public)), (public, relay_port(callee, public))]
            sent = injector.blast(targets, seconds=2.0)
            time.sleep(0.5)
            injector.drain()
        finally:
            injector.close()
        assert sent > 0
        assert injector.received == 0, "the relay answered the injector: hijacked"
        time.sleep(max(0.0, CALL_SECONDS - (time.monotonic() - established)))
        callee.hangup()  # the PBX's BYE to 8005 crosses NAT 1 after > 2 NAT timeouts
        wait_event(caller, "CALL_CLOSED", timeout=10)
        wait_event(callee, "CALL_CLOSED", timeout=10)
    assert_heard(sent_a, recording(callee.rec_dir), "8006 hears 8005 through two NATs")
    assert_heard(sent_b, recording(caller.rec_dir), "8005 hears 8006 through two NATs")


def test_tcp_phone_behind_nat_gets_the_call_on_its_connection(nat_lab: NatLab) -> None:
    require_binary("baresip")
    work = nat_lab.workdir
    quiet = speech_wav(work / "quiet.wav", "", voice="en-us")
    public = nat_lab.public
    with (
        nat_lab.phone(nat_lab.phone1, "8005", audio=quiet, sip_port=5072) as caller,
        nat_lab.phone(nat_lab.phone2, "8007", audio=quiet, transport="tcp",
                      sip_port=5074, rtp_first=30020) as callee,
    ):  # fmt: skip
        caller.wait_registered()
        callee.wait_registered()
        rows = nat_lab.contacts("8007")  # polls: the PBX writes its store in batches
        caller.dial(f"sip:8007@{public}:{SIP_PORT}")
        wait_event(callee, "CALL_ESTABLISHED", timeout=10)
        wait_event(caller, "CALL_ESTABLISHED", timeout=5)
        caller.hangup()
        wait_event(callee, "CALL_CLOSED", timeout=10)
    messages = callee.sip_trace_messages()
    registers = [m for m in messages if m.start_line.startswith("REGISTER ")]
    invites = [m for m in messages if m.start_line.startswith("INVITE ")]
    assert registers and invites, [m.start_line for m in messages]
    # baresip's trace names the local end of the connection a message used: the
    # INVITE came in on the connection the REGISTER went out on (a new
    # connection from the PBX could not even pass the NAT).
    assert registers[0].transport == invites[0].transport == "TCP"
    assert invites[0].dst == registers[0].src, (registers[0].src, invites[0].dst)
    [row] = rows  # read while registered: the phone un-registers when it stops
    assert row["source"].startswith('["tcp"') and nat_lab.nat2.address in row["source"], dict(row)
