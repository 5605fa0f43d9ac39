"""SIPVicious against ``callway pbx``: no extension enumeration, brute force banned.

The attacker is 127.0.0.2; the real phones are on 127.0.0.1.  SIPVicious
0.3.8 parses ``-b/--bindingip`` but its ``main()`` never passes it on (both
``svwar`` and ``svcrack`` bind every address), so the tools are run through
a three-line launcher that forwards the parsed option to the scanner class;
everything else is the stock tool.

- ``svwar`` (REGISTER, INVITE, OPTIONS over a range holding 8005/8006 and
  extensions that do not exist) lists no extension: every user gets the same
  answer (401 with a challenge, 200 for OPTIONS), so the tool cannot tell
  them apart.  The same is checked directly on the wire, header by header.
- ``svcrack`` against 8005 with a wordlist lacking the password is refused
  403 from its 3rd wrong password on (the per-(source, user) ban), never
  succeeds, and the ban holds against the right password from that address.
- While it runs, baresip 8005 and 8006 on 127.0.0.1 register and 8005 calls
  8006.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callway.sip.digest import parse_auth_header
from callway.sip.digest_compute import build_authorization
from tests.helpers.pbx_process import PbxProcess
from tests.helpers.peers import Baresip, in_ci, require_binary
from tests.interop.test_calls_audio import wait_event

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

ATTACKER = "127.0.0.2"
PHONES = "127.0.0.1"
USER_BAN_AFTER = 3  # Authenticator's per-(source, user) limit
SCANNED = "8000-8009,1000,1234,9000,9999"
WORDS = [
    "1234", "0000", "password", "8000", "secret", "letmein", "admin", "123456",
    "80058005", "qwerty", "1111", "pass", "sip", "asterisk", "voip",
]  # fmt: skip
assert "8005" not in WORDS

# Forward the -b option SIPVicious parses to the class it builds (0.3.8 drops it).
_LAUNCHER = """\
import sys
from sipvicious import {module} as tool
cls, bind = tool.{cls}, sys.argv.pop(1)
init = cls.__init__
cls.__init__ = lambda self, *a, **k: init(self, *a, **dict(k, bindingip=bind))
sys.argv[0] = "sipvicious_{module}"
tool.main()
"""


def _require_sipvicious() -> None:
    if shutil.which("sipvicious_svwar", path=str(Path(sys.executable).parent)) is None:
        message = "sipvicious is not installed: pip install sipvicious (the test extra)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def _sipvicious(module: str, *args: str) -> list[str]:
    cls = {"svwar": "TakeASip", "svcrack": "ASipOfRedWine"}[module]
    code = _LAUNCHER.format(module=module, cls=cls)
    return [sys.executable, "-c", code, ATTACKER, "-b", ATTACKER, *args]


# --------------------------------------------------------------------------
# enumeration
# --------------------------------------------------------------------------
def test_svwar_cannot_enumerate_extensions(pbx: PbxProcess, tmp_path: Path) -> None:
    _require_sipvicious()
    target = f"udp://127.0.0.1:{pbx.sip_port}"
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        argv = _sipvicious("svwar", "-vv", "--force", "-m", method, "-e", SCANNED, target)
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        output = done.stdout + done.stderr
        (tmp_path / f"svwar-{method}.log").write_text(output)
        found = set(re.findall(r"extension '([^']+)' (?:exists|probably exists)", output))
        print(f"svwar -m {method}: exit {done.returncode}, extensions listed: {sorted(found)}")
        assert done.returncode in (0, 10), output  # 0: nothing found
        assert not found, f"svwar -m {method} told extensions apart: {found}\n{output}"
        assert "found nothing" in output, output
        assert "Got unhandled exception" not in output, output
    assert pbx.running


def _exchange(port: int, data: bytes, source: str = ATTACKER) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(3.0)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


def _request(method: str, user: str, port: int, *, extra: str = "") -> bytes:
    tag = secrets.token_hex(4)
    text = (
        f"{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {ATTACKER}:5060;branch=z9hG4bK{tag};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{user}@127.0.0.1>\r\n"
        f'From: "{user}" <sip:{user}@127.0.0.1>;tag={tag}\r\n'
        f"Call-ID: {tag}@{ATTACKER}\r\nCSeq: 1 {method}\r\n"
        f"Contact: <sip:{user}@{ATTACKER}:5060>\r\nUser-Agent: friendly-scanner\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    )
    return text.encode()


def _shape(reply: bytes) -> tuple[str, tuple[str, ...], str]:
    """Status line, header names in order, and the challenge's parameter names."""
    lines = reply.decode(errors="replace").split("\r\n")
    names = tuple(line.split(":", 1)[0].lower() for line in lines[1:] if ":" in line)
    challenge = next((v for v in lines if v.lower().startswith("www-authenticate:")), "")
    params = ",".join(sorted(re.findall(r"(\w+)=", challenge)))
    return lines[0], names, params


def test_every_user_gets_the_same_answer_on_the_wire(pbx: PbxProcess) -> None:
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        shapes = {
            user: _shape(_exchange(pbx.sip_port, _request(method, user, pbx.sip_port)))
            for user in ("8005", "8006", "8007", "1234", "9000")
        }
        assert len(set(shapes.values())) == 1, f"{method}: {shapes}"


# --------------------------------------------------------------------------
# brute force
# --------------------------------------------------------------------------
def _verdicts(log: str) -> list[str]:
    """The status svcrack got for each REGISTER it sent with a password guess."""
    verdicts: list[str] = []
    waiting = False
    for line in log.splitlines():
        if "Sending REGISTER with auth=True" in line:
            waiting = True
        elif waiting and (match := re.search(r"Received response: SIP/2.0 (\d{3})", line)):
            verdicts.append(match.group(1))
            waiting = False
    return verdicts


def _register_with_password(port: int, user: str, password: str, source: str) -> str:
    """A full digest REGISTER from ``source``; the final status code."""
    challenge_reply = _exchange(port, _request("REGISTER", user, port), source)
    status = challenge_reply.split(b" ", 2)[1].decode()
    if status != "401":
        return status
    header = next(
        line.split(":", 1)[1].strip()
        for line in challenge_reply.decode().split("\r\n")
        if line.lower().startswith("www-authenticate:")
    )
    authorization = build_authorization(
        parse_auth_header(header), method="REGISTER", uri=f"sip:{user}@127.0.0.1:{port}",
        username=user, password=password, cnonce=secrets.token_hex(4),
    )  # fmt: skip
    reply = _exchange(
        port, _request("REGISTER", user, port, extra=f"Authorization: {authorization}\r\n"), source
    )
    return reply.split(b" ", 2)[1].decode()


def test_svcrack_is_banned_while_phones_still_call(pbx: PbxProcess, tmp_path: Path) -> None:
    _require_sipvicious()
    require_binary("baresip")
    wordlist = tmp_path / "words.txt"
    wordlist.write_text("\n".join(WORDS) + "\n")
    log_path = tmp_path / "svcrack.log"
    target = f"udp://127.0.0.1:{pbx.sip_port}"
    argv = _sipvicious("svcrack", "-vv", "-u", "8005", "-d", str(wordlist), target)
    with log_path.open("w") as log:
        attack = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        # The real 8005 and 8006 register and talk from 127.0.0.1 meanwhile.
        caller = Baresip(tmp_path / "baresip-8005", "8005", "8005", pbx.sip_port)
        callee = Baresip(tmp_path / "baresip-8006", "8006", "8006", pbx.sip_port)
        with caller, callee:
            caller.wait_registered()
            callee.wait_registered()
            caller.dial(f"sip:8006@127.0.0.1:{pbx.sip_port}")
            wait_event(caller, "CALL_ESTABLISHED")
            wait_event(callee, "CALL_ESTABLISHED")
            during = attack.poll() is None
            time.sleep(1.0)
            caller.hangup()
            wait_event(callee, "CALL_CLOSED")
            wait_event(caller, "CALL_CLOSED")
        attack.wait(timeout=60)
    finally:
        if attack.poll() is None:
            attack.kill()
            attack.wait(5)
    output = log_path.read_text()
    verdicts = _verdicts(output)
    print(f"svcrack: {len(verdicts)} guesses answered {verdicts}; attack still running "
          f"while the call was up: {during}")  # fmt: skip
    assert during, "svcrack ended before the phones' call: the test proves nothing"
    assert "The password for" not in output and "found nothing" in output, output
    assert "200" not in verdicts, output
    assert len(verdicts) >= USER_BAN_AFTER + 3, output
    assert verdicts[: USER_BAN_AFTER - 1] == ["401"] * (USER_BAN_AFTER - 1), verdicts
    assert set(verdicts[USER_BAN_AFTER - 1 :]) == {"403"}, verdicts
    # The ban is on (source, user): the right password from the attacker is refused too,
    # while from the phones' address it still works.
    assert _register_with_password(pbx.sip_port, "8005", "8005", ATTACKER) == "403"
    assert _register_with_password(pbx.sip_port, "8005", "8005", PHONES) == "200"
    assert pbx.running
