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


def _client_cert(ca_dir: Path, out: Path, *, expired: bool) -> tuple[Path, Path]:
    """A client certificate signed by the CA in ``ca_dir`` (optionally already expired)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    start, end = (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) if expired \
        else (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=30))  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phone")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "client.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out / "client.crt", out / "client.key"


def _options_over_tls(port: int, cert: Path, key: Path) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert, key)
    request = (
        f"OPTIONS sip:s@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKtlsclient;rport\r\n"
        "From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:s@127.0.0.1>\r\nCall-ID: tlsclient\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(request)
        return tls.recv(4096)


def test_wrong_or_expired_client_certificate_refused(pbx_factory: PbxFactory,
                                                     tmp_path: Path) -> None:  # fmt: skip
    cert, key, ca = make_cert(tmp_path / "certs")
    make_cert(tmp_path / "other")  # another CA nobody trusts
    tls_port = free_sip_port()
    pbx_factory(extra_pjsip=tls_transport(tls_port, cert, key, "verify_client=yes\n"
                                          f"ca_list_file={ca}\n"))  # fmt: skip
    good = _client_cert(tmp_path / "certs", tmp_path / "good", expired=False)
    assert _options_over_tls(tls_port, *good).startswith(b"SIP/2.0 200")
    for name, cert_pair in (
        ("wrong CA", _client_cert(tmp_path / "other", tmp_path / "wrong", expired=False)),
        ("expired", _client_cert(tmp_path / "certs", tmp_path / "expired", expired=True)),
    ):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
            answer = _options_over_tls(tls_port, *cert_pair)
            if not answer:  # closed by the server after the handshake
                raise ConnectionResetError(name)
