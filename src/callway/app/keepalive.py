"""NAT keep-alives of the PBX: OPTIONS qualify and CRLF pings, the I/O side.

* Qualify (res_pjsip ``qualify_frequency``): the sans-I/O
  :class:`~callway.pbx.qualify.Qualifier` says when a registered contact
  (or an AOR's static ``contact=``) is due; this shell sends it an OPTIONS
  (RFC 3261 §11) to the address and connection its REGISTER came from (and
  through its Path, RFC 3327, or the AOR's ``outbound_proxy``), and logs
  reachability changes the way Asterisk does.
* CRLF keep-alives (``[global] keep_alive_interval``): every interval,
  ``CRLFCRLF`` on each open TCP/TLS connection (RFC 5626 §3.5.1), which
  keeps NAT and firewall state of idle stream connections alive.

Driven by the PBX's periodic tick (:meth:`Keepalives.tick`), which is fine
for timers measured in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from callway.app.b2bua.dial import outbound_proxy, path_destination
from callway.app.b2bua.manager import CallManager
from callway.pbx.location import Binding
from callway.pbx.model import Aor
from callway.pbx.qualify import ContactStatus, Qualifier, SendOptions, StatusChanged
from callway.sip.dialog import new_call_id, new_tag
from callway.sip.message import Request, Response
from callway.sip.transaction.builders import new_branch
from callway.transport.stack import SipStack

log = logging.getLogger("callway.pbx.qualify")

CRLF_PING = b"\r\n\r\n"


class Keepalives:
    """Qualify pings and CRLF keep-alives for one PBX node."""

    def __init__(
        self,
        stack: SipStack,
        manager: CallManager,
        *,
        aor_of: Callable[[str], Aor | None],
        lookup: Callable[[str, str], Binding | None],
        keep_alive_interval: Callable[[], int],
        clock: Callable[[], float],
    ) -> None:
        self.stack = stack
        self.manager = manager
        self.clock = clock
        self.keep_alive_interval = keep_alive_interval
        self.qualifier = Qualifier(aor_of, lookup)
        self._next_crlf: float | None = None
        self.crlf_sent = 0

    def on_binding(self, binding: Binding) -> None:
        """Registrar listener: a contact was added or refreshed."""
        self.qualifier.on_binding(binding, self.clock())

    def tick(self, now: float) -> None:
        """Send what is due: OPTIONS pings, timeouts, CRLF pings."""
        deadline = self.qualifier.get_timer()
        if deadline is not None and deadline <= now:
            self.qualifier.handle_timer(now)
        self._drain()
        self._crlf(now)

    def status(self, aor: str, uri: str) -> str:
        """``Avail``/``Unavail``/``Unknown`` for the console (``pjsip show contacts``)."""
        return self.qualifier.status(aor, uri)[0].value

    # -- qualify ----------------------------------------------------------------------

    def _drain(self) -> None:
        while (event := self.qualifier.next_event()) is not None:
            if isinstance(event, SendOptions):
                self._send_options(event)
            elif isinstance(event, StatusChanged):
                _log_status(event)

    def _send_options(self, event: SendOptions) -> None:
        binding = event.binding
        aor = self.qualifier.aor_of(binding.aor)
        proxy = outbound_proxy(aor.outbound_proxy) if aor and aor.outbound_proxy else None
        dest = proxy[0] if proxy else path_destination(binding)
        local = dest.local or self.stack.default_local(dest.transport)
        host, port = self.manager.nat.signaling(local, dest.transport, dest.host)
        suffix = "" if dest.transport == "udp" else f";transport={dest.transport}"
        headers = [
            ("Via", f"SIP/2.0/{dest.transport.upper()} {host}:{port};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:callway@{host}:{port}>;tag={new_tag()}"),
            ("To", f"<{binding.uri}>"),
            ("Call-ID", new_call_id(host)),
            ("CSeq", "1 OPTIONS"),
            ("Contact", f"<sip:callway@{host}:{port}{suffix}>"),
            ("Accept", "application/sdp"),
            ("User-Agent", self.manager.user_agent),
            *((("Route", proxy[1]),) if proxy else ()),  # the AOR's outbound_proxy
            *(("Route", hop) for hop in binding.path),
        ]
        request = Request("OPTIONS", binding.uri, headers)
        token = event.token

        def on_response(response: Response | None) -> None:
            if response is not None and response.status < 200:
                return
            self.qualifier.response(token, None if response is None else response.status,
                                    self.clock())  # fmt: skip
            self._drain()

        try:
            self.manager.send_request(request, dest, on_response)
        except Exception:  # a bad stored contact must not stop the other pings
            log.exception("cannot qualify %s of %s", binding.uri, binding.aor)

    # -- CRLF ---------------------------------------------------------------------------

    def _crlf(self, now: float) -> None:
        interval = self.keep_alive_interval()
        if interval <= 0:
            self._next_crlf = None
            return
        if self._next_crlf is None:
            self._next_crlf = now + interval
        if now < self._next_crlf:
            return
        self._next_crlf = now + interval
        for server in self.stack.streams:
            for conn in list(server.connections.values()):
                conn.write(CRLF_PING)
                self.crlf_sent += 1


def _log_status(event: StatusChanged) -> None:
    """Asterisk's wording (res_pjsip/pjsip_options.c), so operators' log watchers match."""
    name = "Reachable" if event.status is ContactStatus.REACHABLE else "Unreachable"
    rtt = (event.rtt or 0.0) * 1000.0
    log.info("Contact %s/%s is now %s.  RTT: %.3f msec", event.aor, event.uri, name, rtt)
