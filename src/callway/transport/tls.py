"""TLS contexts for SIP over TLS from pjsip.conf transport options (RFC 3261 §26.2.1).

Asterisk's options map onto OpenSSL's: ``cert_file``/``priv_key_file``
(+ ``password``), ``ca_list_file``/``ca_list_path``, ``method`` (only TLS 1.2
and 1.3 are offered, whatever older method is named), ``verify_client``
(ask for a client certificate and check it when sent), ``require_client_cert``
(refuse clients without one), ``verify_server`` (check the server's
certificate on outgoing connections) and ``cipher`` (OpenSSL cipher names).
"""

from __future__ import annotations

import logging
import ssl

from callway.pbx.model import Transport

log = logging.getLogger("callway.transport.tls")

_VERSIONS = {
    "tlsv1_2": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
    "tlsv1_3": (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
}


class TlsConfigError(ValueError):
    """A TLS transport cannot be set up (missing or unreadable certificate...)."""


def _versions(context: ssl.SSLContext, method: str) -> None:
    low, high = _VERSIONS.get(method.lower(), (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3))
    if method.lower() in ("tlsv1", "tlsv1_1", "sslv2", "sslv3"):
        log.warning("TLS method %s is obsolete: using TLS 1.2 and 1.3 only", method)
    context.minimum_version = low
    context.maximum_version = high


def _common(context: ssl.SSLContext, transport: Transport) -> None:
    _versions(context, transport.method or "default")
    if transport.cipher:
        try:
            context.set_ciphers(":".join(transport.cipher))
        except ssl.SSLError as exc:
            raise TlsConfigError(f"transport {transport.name}: bad cipher list: {exc}") from exc
    try:
        if transport.ca_list_file or transport.ca_list_path:
            context.load_verify_locations(
                cafile=transport.ca_list_file or None, capath=transport.ca_list_path or None
            )
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"transport {transport.name}: cannot load CA list: {exc}") from exc


def load_certificate(context: ssl.SSLContext, transport: Transport) -> None:
    """(Re)load the certificate and key; new handshakes use them (reload without restart)."""
    if not transport.cert_file or not transport.priv_key_file:
        raise TlsConfigError(
            f"transport {transport.name}: cert_file and priv_key_file are required"
        )
    try:
        context.load_cert_chain(
            transport.cert_file, transport.priv_key_file, transport.password or None
        )
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"transport {transport.name}: cannot load certificate: {exc}") from exc


def server_context(transport: Transport) -> ssl.SSLContext:
    """The context of a listening TLS transport."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(context, transport)
    load_certificate(context, transport)
    if transport.require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    elif transport.verify_client:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(transport: Transport) -> ssl.SSLContext:
    """The context for connections we open (to phones registered over TLS, to nodes)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _common(context, transport)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED if transport.verify_server else ssl.CERT_NONE
    if transport.verify_server and not (transport.ca_list_file or transport.ca_list_path):
        context.load_default_certs()
    if transport.cert_file and transport.priv_key_file:
        load_certificate(context, transport)
    return context
