"""``callway cert``: self-signed certificates for SIP over TLS in one command.

Two shapes:

* ``--self-signed``: one certificate that is its own issuer (the demo);
* default: a small CA (``ca.crt``/``ca.key``) and a server certificate signed
  by it, so phones can trust the CA once and servers can be re-issued.

Keys are EC P-256; certificates carry the names and IPs given as
subjectAltName (what TLS clients check, RFC 5922 §7.1 for SIP).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class Issued:
    """Paths of what was written."""

    cert: Path
    key: Path
    ca_cert: Path | None = None
    ca_key: Path | None = None


def _names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: str, issuer: x509.Name | None, days: int, key: ec.EllipticCurvePrivateKey
             ) -> x509.CertificateBuilder:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _server_extensions(
    builder: x509.CertificateBuilder, names: list[str]
) -> x509.CertificateBuilder:
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return (
        builder.add_extension(x509.SubjectAlternativeName(_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def self_signed(directory: Path, names: list[str], *, days: int = 825,
                stem: str = "callway") -> Issued:  # fmt: skip
    """One certificate signed by its own key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = _key()
    builder = _server_extensions(_builder(names[0], None, days, key), names)
    cert = builder.sign(key, hashes.SHA256())
    issued = Issued(directory / f"{stem}.crt", directory / f"{stem}.key")
    _write_cert(issued.cert, cert)
    _write_key(issued.key, key)
    return issued


def with_ca(directory: Path, names: list[str], *, days: int = 825,
            stem: str = "callway") -> Issued:  # fmt: skip
    """A CA (reused if ``ca.crt``/``ca.key`` exist) and a server certificate it signs."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = directory / "ca.crt", directory / "ca.key"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        ca_key = loaded
    else:
        ca_key = _key()
        ca_cert = (
            _builder("callway CA", None, days * 4, ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        _write_cert(ca_cert_path, ca_cert)
        _write_key(ca_key_path, ca_key)
    key = _key()
    builder = _server_extensions(_builder(names[0], ca_cert.subject, days, key), names)
    cert = builder.sign(ca_key, hashes.SHA256())
    issued = Issued(directory / f"{stem}.crt", directory / f"{stem}.key", ca_cert_path, ca_key_path)
    _write_cert(issued.cert, cert)
    _write_key(issued.key, key)
    return issued
