"""``callway probe URI``: a sipsak-style SIP OPTIONS health check.

Exit status as sipsak's: 0 = a 200 came back, 1 = another final response,
2 = local error (bad URI, cannot bind, TLS setup), 3 = timeout or ICMP
refused.  With ``--nagios`` the status and the one-line output follow the
Nagios plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so it
works as a keepalived ``vrrp_script`` or a Nagios check as it is.
Over UDP the request is retransmitted per RFC 3261 §17.1.2.2 (T1 doubling).
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time
from dataclasses import dataclass

from callway.sip.errors import ParseError
from callway.sip.framing import FramedMessage, StreamFramer
from callway.sip.message import Response, parse_message
from callway.sip.uri import SipURI, parse_uri

EXIT_OK, EXIT_OTHER, EXIT_LOCAL, EXIT_TIMEOUT = 0, 1, 2, 3
NAGIOS = {EXIT_OK: 0, EXIT_OTHER: 1, EXIT_TIMEOUT: 2, EXIT_LOCAL: 3}
NAGIOS_WORDS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What happened."""

    code: int
    text: str
    status: int | None = None
    rtt: float | None = None


def build_options(uri: SipURI, transport: str, local: tuple[str, int]) -> bytes:
    """The OPTIONS request (RFC 3261 §11.1)."""
    tag = secrets.token_hex(4)
    branch = "z9hG4bK" + secrets.token_hex(8)
    call_id = f"{secrets.token_hex(8)}@{local[0]}"
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {local[0]}:{local[1]};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:probe@{local[0]}>;tag={tag}",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:probe@{local[0]}:{local[1]}>",
        "Accept: application/sdp",
        "User-Agent: callway-probe",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def probe(uri_text: str, *, timeout: float = 1.0, transport: str | None = None,
          cafile: str | None = None, verify: bool = False) -> ProbeResult:  # fmt: skip
    """Send one OPTIONS to ``uri_text`` and classify the outcome."""
    try:
        uri = parse_uri(uri_text)
    except ParseError as exc:
        return ProbeResult(EXIT_LOCAL, f"bad URI: {exc.reason}")
    if not isinstance(uri, SipURI):
        return ProbeResult(EXIT_LOCAL, f"not a SIP URI: {uri_text}")
    kind = transport or uri.transport or ("tls" if uri.secure else "udp")
    port = uri.port or (5061 if kind == "tls" else 5060)
    host = uri.host.strip("[]")
    started = time.monotonic()
    try:
        if kind == "udp":
            data = _udp(host, port, uri, timeout)
        else:
            context = _tls_context(cafile, verify) if kind == "tls" else None
            data = _stream(host, port, uri, kind, timeout, context)
    except TimeoutError:
        return ProbeResult(EXIT_TIMEOUT, f"no reply from {host}:{port} within {timeout}s")
    except ConnectionRefusedError:
        return ProbeResult(EXIT_TIMEOUT, f"connection refused by {host}:{port}")
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(EXIT_LOCAL, f"{type(exc).__name__}: {exc}")
    rtt = time.monotonic() - started
    if data.status == 200:
        return ProbeResult(EXIT_OK, f"200 {data.reason}", 200, rtt)
    return ProbeResult(EXIT_OTHER, f"{data.status} {data.reason}", data.status, rtt)


def _final(data: bytes) -> Response | None:
    try:
        message = parse_message(data)
    except ParseError:
        return None
    if isinstance(message, Response) and message.status >= 200:
        return message
    return None


def _udp(host: str, port: int, uri: SipURI, timeout: float) -> Response:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        request = build_options(uri, "udp", sock.getsockname()[:2])
        deadline = time.monotonic() + timeout
        interval = 0.5
        while True:
            sock.send(request)
            wait_until = min(deadline, time.monotonic() + interval)
            while (left := wait_until - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    response = _final(sock.recv(65535))
                except TimeoutError:
                    break
                if response is not None:
                    return response
            if time.monotonic() >= deadline:
                raise TimeoutError
            interval = min(interval * 2, 4.0)


def _stream(host: str, port: int, uri: SipURI, kind: str, timeout: float,
            context: ssl.SSLContext | None) -> Response:  # fmt: skip
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if context is not None:
            sock = context.wrap_socket(raw, server_hostname=host)
        sock.sendall(build_options(uri, kind, sock.getsockname()[:2]))
        framer = StreamFramer()
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(65535)
            if not chunk:
                raise ConnectionRefusedError("connection closed")
            framer.receive_data(chunk)
            while (event := framer.next_event()) is not None:
                if isinstance(event, FramedMessage):
                    response = _final(event.data)
                    if response is not None:
                        return response
        raise TimeoutError


def _tls_context(cafile: str | None, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def exit_code(result: ProbeResult, nagios: bool) -> int:
    """The process exit status."""
    return NAGIOS[result.code] if nagios else result.code


def report(result: ProbeResult, nagios: bool) -> str:
    """One line for the operator (Nagios format with ``--nagios``)."""
    if nagios:
        word = NAGIOS_WORDS[NAGIOS[result.code]]
        perf = f"|rtt={result.rtt:.4f}s" if result.rtt is not None else ""
        return f"SIP {word} - {result.text}{perf}"
    rtt = f" in {result.rtt * 1000:.1f} ms" if result.rtt is not None else ""
    return f"{result.text}{rtt}"
