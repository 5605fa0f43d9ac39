"""SIP tracing of a real ``callway pbx``: pcap files tshark decodes, HEP a collector reads.

The PBX runs as a real, unmodified process with a ``[trace]`` section in its
``callway.toml``.

- A sipp call 8005 -> 8006: ``tshark -r`` on the global capture lists each
  leg's SIP methods and statuses in the order sipp sent and received them, and
  the HEP packets a UDP "collector" in the test received decode (with the
  spec-written decoder of tests/unit/ops/hepread.py) to the same messages.
- An OPTIONS over TLS: the capture shows it decrypted, as SIP over TCP on the
  TLS port.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from callway.ops.ladder import describe_file
from tests.helpers.pbx_process import PbxProcess, write_config
from tests.helpers.peers import SippResult, require_binary, run_sipp
from tests.helpers.ports import free_port_pair_block, free_sip_port
from tests.unit.ops.hepread import decode_hep3, fields

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


@contextmanager
def traced_pbx(
    tmp_path: Path, trace: dict[str, object], extra_pjsip: str = ""
) -> Iterator[PbxProcess]:
    config_dir = tmp_path / "pbx"
    port = free_sip_port()
    toml = "[trace]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in trace.items())
    write_config(config_dir, port, extra_pjsip=extra_pjsip, toml=toml)
    pbx = PbxProcess(config_dir, port)
    try:
        pbx.start()
        yield pbx
    except BaseException:
        print(pbx.stderr_text(), file=sys.stderr)
        raise
    finally:
        pbx.stop()


def tshark(pcap: Path, *extra: str) -> list[list[str]]:
    """Rows of ``tshark -r PCAP -Y sip -T fields`` (Call-ID, method, status, protocols)."""
    binary = require_binary("tshark")
    result = subprocess.run(
        [binary, "-r", str(pcap), "-Y", "sip", "-T", "fields",
         "-e", "sip.Call-ID", "-e", "sip.Method", "-e", "sip.Status-Code",
         "-e", "frame.protocols", "-e", "tcp.port", *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines() if line.strip()]


def ladder(rows: list[list[str]], call_id: str) -> list[str]:
    """A call's SIP methods and statuses, in capture order."""
    return [row[1] or row[2] for row in rows if row[0] == call_id]


def sipp_ladder(result: SippResult) -> tuple[str, list[str]]:
    """(Call-ID, methods and statuses) of what one sipp run sent and received, in order."""
    labels: list[str] = []
    call_id = ""
    for block in re.split(r"^-{10,}.*$", result.messages(), flags=re.MULTILINE):
        head, _, rest = block.strip("\n").partition("\n")
        if "message sent" not in head and "message received" not in head:
            continue
        message = rest.lstrip("\n")
        start = message.split("\n", 1)[0].strip()
        labels.append(start.split()[1] if start.startswith("SIP/2.0") else start.split()[0])
        match = re.search(r"^Call-ID:\s*(\S+)", message, re.MULTILINE | re.IGNORECASE)
        if match and not call_id:
            call_id = match.group(1)
    return call_id, labels


class HepCollector:
    """A UDP socket on loopback that keeps every datagram (a stand-in for Homer)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.packets: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.packets.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_a_call_in_the_pcap_and_over_hep(tmp_path: Path) -> None:
    require_binary("sipp")
    require_binary("tshark")
    pcap = tmp_path / "trace" / "all.pcap"
    collector = HepCollector()
    trace = {"pcap": str(pcap), "hep": collector.address, "hep_id": 2001, "hep_password": "pw"}
    try:
        with traced_pbx(tmp_path, trace) as pbx:
            target = f"127.0.0.1:{pbx.sip_port}"
            callee_port = free_port_pair_block(1)
            registered = run_sipp(
                "register_auth.xml", target, local_port=callee_port, service="8006",
                extra_args=["-au", "8006", "-ap", "8006"], timeout=10,
                trace_dir=tmp_path / "sipp-register",
            )  # fmt: skip
            assert registered.returncode == 0, registered.describe()
            assert pbx.wait_contacts("8006")
            with ThreadPoolExecutor(1) as pool:
                callee = pool.submit(
                    run_sipp, "call_uas.xml", target, local_port=callee_port, service="8006",
                    timeout=20, trace_dir=tmp_path / "sipp-uas",
                )  # fmt: skip
                time.sleep(0.3)  # let sipp bind before the INVITE comes
                caller = run_sipp(
                    "call_uac.xml", target, service="8006",
                    extra_args=["-au", "8005", "-ap", "8005"], timeout=20,
                    trace_dir=tmp_path / "sipp-uac",
                )  # fmt: skip
                answered = callee.result(timeout=30)
            assert caller.returncode == 0, caller.describe()
            assert answered.returncode == 0, answered.describe()
            time.sleep(0.3)  # the last 200 OK to the BYE is traced as it leaves
    finally:
        time.sleep(0.2)
        collector.close()

    rows = tshark(pcap)
    caller_id, caller_seen = sipp_ladder(caller)
    callee_id, callee_seen = sipp_ladder(answered)
    assert caller_id and callee_id and caller_id != callee_id
    # every leg, message for message, as the peer itself saw it
    assert ladder(rows, caller_id) == caller_seen
    assert ladder(rows, callee_id) == callee_seen
    main = [label for label in caller_seen if label not in ("100", "180", "183")]
    assert main == ["INVITE", "401", "ACK", "INVITE", "200", "ACK", "BYE", "200"]
    assert ladder(rows, callee_id)[0] == "INVITE" and callee_seen[-1] == "200"
    assert all(":udp:sip" in row[3] for row in rows)

    # `callway trace` draws the same leg
    drawn = describe_file(pcap, caller_id).splitlines()[1:]
    assert [line.split("|")[1].strip("-<> ").split()[0] for line in drawn] == caller_seen

    # the HEP collector got the same messages, and each packet decodes fully
    decoded = [fields(decode_hep3(packet)) for packet in collector.packets]
    assert decoded, "no HEP packet received"
    for hep in decoded:
        assert (hep["family"], hep["proto"], hep["proto_type"]) == (2, 17, 1)
        assert (hep["capture_id"], hep["auth"]) == (2001, "pw")
        assert hep["src"] == hep["dst"] == "127.0.0.1"
        assert pbx.sip_port in (hep["sport"], hep["dport"])
        assert hep["sec"] > 1_600_000_000 and 0 <= hep["usec"] < 1_000_000
        assert f"Call-ID: {hep['correlation']}".encode() in hep["payload"]
    hep_caller = [hep["payload"] for hep in decoded if hep["correlation"] == caller_id]
    hep_labels = [
        p.split(b" ", 2)[1 if p.startswith(b"SIP/2.0") else 0].decode() for p in hep_caller
    ]
    assert hep_labels == caller_seen
    # the pcap and HEP saw the same number of SIP messages in all
    assert len(decoded) == len(rows)


def make_cert(directory: Path) -> tuple[Path, Path]:
    subprocess.run(
        [sys.executable, "-m", "callway", "cert", "--dir", str(directory), "--name", "127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory / "callway.crt", directory / "callway.key"


def test_tls_is_captured_decrypted(tmp_path: Path) -> None:
    require_binary("tshark")
    cert, key = make_cert(tmp_path / "certs")
    tls_port = free_sip_port()
    pcap = tmp_path / "trace" / "all.pcap"
    transport = (
        f"[transport-tls]\ntype=transport\nprotocol=tls\nbind=127.0.0.1:{tls_port}\n"
        f"cert_file={cert}\npriv_key_file={key}\nmethod=tlsv1_2\n"
    )
    with traced_pbx(tmp_path, {"pcap": str(pcap)}, extra_pjsip=transport):
        probe = subprocess.run(
            [sys.executable, "-m", "callway", "probe", "-t", "3",
             f"sip:s@127.0.0.1:{tls_port};transport=tls"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stdout + probe.stderr
        time.sleep(0.2)
    rows = tshark(pcap)
    tls_rows = [row for row in rows if str(tls_port) in row[4].split(",")]
    assert [row[1] or row[2] for row in tls_rows] == ["OPTIONS", "200"]
    # plain SIP over TCP on the TLS port: what no network capture shows
    assert all(":tcp:sip" in row[3] and "tls" not in row[3] for row in tls_rows)
    assert shutil.which("tshark")
