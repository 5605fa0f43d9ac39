"""SIP over TLS: `callway cert`, a TLS transport from pjsip.conf, real TLS clients.

baresip registers over TLS; `callway probe` gets 200 over TLS; a TLS 1.1
client and a client presenting no certificate where one is required are
refused; the certificate is reloaded on SIGHUP without a restart.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from tests.helpers.peers import Baresip, require_binary
from tests.helpers.ports import free_sip_port
from tests.interop.conftest import PbxFactory

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


def make_cert(directory: Path, *extra: str) -> tuple[Path, Path, Path]:
    subprocess.run(
        [sys.executable, "-m", "callway", "cert", "--dir", str(directory), "--name", "localhost",
         "--name", "127.0.0.1", *extra],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory / "callway.crt", directory / "callway.key", directory / "ca.crt"


def tls_transport(port: int, cert: Path, key: Path, extra: str = "") -> str:
    return (
        f"[transport-tls]\ntype=transport\nprotocol=tls\nbind=127.0.0.1:{port}\n"
        f"cert_file={cert}\npriv_key_file={key}\nmethod=tlsv1_2\n{extra}"
    )


def probe_tls(port: int, cafile: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "callway",
        "probe",
        "-t",
        "3",
        f"sip:s@127.0.0.1:{port};transport=tls",
    ]
    if cafile is not None:
        args += ["--cafile", str(cafile), "--verify"]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def peer_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_probe_and_baresip_over_tls(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    require_binary("baresip")
    cert, key, ca = make_cert(tmp_path / "certs")
    tls_port = free_sip_port()
    pbx = pbx_factory(extra_pjsip=tls_transport(tls_port, cert, key))
    result = probe_tls(tls_port, ca)
    assert result.returncode == 0, result.stdout + result.stderr
    phone = Baresip(tmp_path / "b", "8005", "8005", tls_port, transport="tls").start()
    try:
        phone.wait_registered(timeout=15)
        rows = pbx.wait_contacts("8005")
        assert rows and "transport=tls" in str(rows[0]["uri"]).lower()
    finally:
        phone.stop()


def test_old_tls_and_missing_client_cert_refused(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    cert, key, ca = make_cert(tmp_path / "certs")
    tls_port = free_sip_port()
    pbx_factory(extra_pjsip=tls_transport(tls_port, cert, key, "require_client_cert=yes\n"
                                          f"ca_list_file={ca}\n"))  # fmt: skip
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # the point is to try what is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        pytest.raises((ssl.SSLError, ConnectionResetError, OSError)),
        socket.create_connection(("127.0.0.1", tls_port), timeout=3) as raw,
        old.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"\r\n\r\n")
        tls.recv(10)
    # TLS 1.2 without a client certificate: the handshake (or the first read) fails.
    result = probe_tls(tls_port)
    assert result.returncode != 0, result.stdout


def test_certificate_reload_on_sighup(pbx_factory: PbxFactory, tmp_path: Path) -> None:
    cert, key, _ca = make_cert(tmp_path / "certs")
    tls_port = free_sip_port()
    pbx = pbx_factory(extra_pjsip=tls_transport(tls_port, cert, key))
    before = peer_certificate(tls_port)
    make_cert(tmp_path / "certs")  # re-issue in place (same CA, new key and certificate)
    assert pbx.proc is not None
    pbx.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline and after == before:
        time.sleep(0.2)
        after = peer_certificate(tls_port)
    assert after != before
    assert probe_tls(tls_port).returncode == 0
