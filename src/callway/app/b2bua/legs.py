"""Call legs of the B2BUA: the caller's (UAS) and each callee's (UAC).

A leg owns one dialog and knows where its peer is (the address its
messages come from, which is NAT-safe: RFC 3581 and Asterisk's
``force_rport``/``rewrite_contact`` behaviour).  What to do with in-dialog
requests (BYE, re-INVITE, UPDATE, INFO) is decided by the leg's
:class:`LegListener`, the call that bridges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Protocol

from callway.app.b2bua.manager import CallManager
from callway.app.b2bua.timers import Negotiated, SessionTimer, TimerAction
from callway.core.address import Address
from callway.sip.dialog import Dialog, new_call_id, new_tag
from callway.sip.digest import (
    DigestError,
    build_authorization,
    parse_auth_header,
    select_challenge,
)
from callway.sip.errors import ParseError
from callway.sip.message import Request, Response, make_response
from callway.sip.transaction import ClientTransactionKey, ServerTransactionKey, build_cancel
from callway.sip.transaction.builders import new_branch, request_uri_text

log = logging.getLogger("callway.b2bua")

T1 = 0.5
T2 = 4.0
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
SUPPORTED = "timer"


class LegListener(Protocol):
    """The call a leg belongs to."""

    def on_bye(self, leg: Leg) -> None:
        """The peer hung up."""

    def on_reoffer(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        """A re-INVITE or UPDATE arrived; the listener must answer it."""

    def on_info(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        """An INFO arrived (e.g. DTMF); the listener must answer it."""


class Leg:
    """What both kinds of leg share: a dialog and a peer address."""

    def __init__(self, mgr: CallManager, peer: Address, local: tuple[str, int]) -> None:
        self.mgr = mgr
        self.peer = peer
        self.local = local
        # what Via and Contact say: our external address for a peer outside local_net
        self.advertised = mgr.nat.signaling(local, peer.transport, peer.host)
        self.dialog: Dialog | None = None
        self.listener: LegListener | None = None
        self.ended = asyncio.Event()
        #: Called once when the leg ends (cheaper to wait on than ``ended`` in a Task).
        self.end_hooks: list[Callable[[], None]] = []
        self._retransmit: asyncio.TimerHandle | None = None
        # an ACK carrying the SDP answer to the offer in our 2xx (RFC 3264 §4, §3261 §13.2.1)
        self.on_ack_sdp: Callable[[Leg, bytes], None] | None = None
        # RFC 4028: the running session timer and the SDP a re-INVITE refresh carries
        self.session_timer: SessionTimer | None = None
        self.refresher = ""
        self.refresh_body: Callable[[], bytes] | None = None
        self.peer_allows_update = False
        self._timer_task: asyncio.Task[None] | None = None

    @property
    def transport(self) -> str:
        """``UDP``/``TCP``/``TLS`` for Via."""
        return self.peer.transport.upper()

    @property
    def via_host(self) -> str:
        """host:port for our Via."""
        return f"{self.advertised[0]}:{self.advertised[1]}"

    @property
    def contact(self) -> str:
        """Our Contact header value."""
        suffix = "" if self.peer.transport == "udp" else f";transport={self.peer.transport}"
        return f"<sip:callway@{self.advertised[0]}:{self.advertised[1]}{suffix}>"

    @property
    def media_host(self) -> str:
        """The address for our SDP to this peer (``external_media_address`` behind NAT)."""
        local, peer = self.local, self.peer
        return self.mgr.nat.media_host(local, peer.transport, local[0], peer.host)

    # -- requests we send within the dialog ----------------------------------------

    def new_request(
        self, method: str, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """A request within this leg's dialog (§12.2.1.1)."""
        assert self.dialog is not None
        return self.dialog.create_request(
            method,
            via_host=self.via_host,
            via_transport=self.transport,
            body=body,
            content_type=content_type,
            extra=(("User-Agent", self.mgr.user_agent),),
        )

    async def send(self, request: Request, timeout: float = 32.0) -> Response | None:
        """Send an in-dialog request and wait for its final response (None: timed out)."""
        future = self.mgr.request(request, self.peer)
        expiry = asyncio.get_running_loop().call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            expiry.cancel()

    async def bye(self) -> None:
        """Hang up this leg (§15.1.1)."""
        if self.ended.is_set() or self.dialog is None:
            self.finish()
            return
        self.finish()
        await self.send(self.new_request("BYE"), timeout=10.0)

    def finish(self) -> None:
        """The leg is over: stop timers, forget the dialog."""
        if not self.ended.is_set():
            self.ended.set()
            hooks, self.end_hooks = self.end_hooks, []
            for hook in hooks:
                hook()
        self._stop_retransmit()
        task, self._timer_task = self._timer_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self.dialog is not None:
            self.mgr.remove_dialog(self.dialog.call_id, self.dialog.local_tag)

    # -- requests we receive within the dialog ---------------------------------------

    def handle_request(self, key: ServerTransactionKey, request: Request) -> None:
        """An in-dialog request from the peer (§12.2.2)."""
        assert self.dialog is not None
        if not self.dialog.receive_request(request):
            self.mgr.port.send_response(key, make_response(request, 500, "Out Of Order CSeq"))
            return
        method = request.method
        if method == "BYE":
            self.mgr.port.send_response(key, make_response(request, 200))
            self.finish()
            if self.listener is not None:
                self.listener.on_bye(self)
        elif method in ("INVITE", "UPDATE"):
            self.dialog.refresh_target(request)
            self._peer_refreshed(request)
            if self.listener is None:
                self.mgr.port.send_response(key, make_response(request, 488))
            else:
                self.listener.on_reoffer(self, key, request)
        elif method == "INFO" and self.listener is not None:
            self.listener.on_info(self, key, request)
        elif method in ("OPTIONS", "INFO", "NOTIFY"):
            self.mgr.port.send_response(key, make_response(request, 200))
        else:
            response = make_response(request, 405)
            response.add("Allow", ALLOW)
            self.mgr.port.send_response(key, response)

    # -- RFC 4028 session timers ----------------------------------------------------------

    def start_session_timer(self, negotiated: Negotiated) -> None:
        """Run the negotiated session timer: refresh (we are UAS) or watch for refreshes."""
        if not negotiated.active or self.ended.is_set():
            return
        loop = asyncio.get_running_loop()
        self.refresher = negotiated.refresher
        self.session_timer = SessionTimer(
            negotiated.interval, we_refresh=negotiated.refresher == "uas", now=loop.time()
        )
        self._timer_task = loop.create_task(self._run_session_timer())

    def timer_headers(self) -> tuple[tuple[str, str], ...]:
        """Session-Expires (and Require: timer) for a 2xx to a refresh request (§9)."""
        timer = self.session_timer
        if timer is None:
            return ()
        headers = [("Session-Expires", f"{int(timer.interval)};refresher={self.refresher}")]
        if self.refresher == "uac":
            headers.append(("Require", "timer"))
        return tuple(headers)

    def _peer_refreshed(self, request: Request) -> None:
        """A re-INVITE or UPDATE from the peer refreshes the session (§10)."""
        timer = self.session_timer
        if timer is None:
            return
        value = request.get("Session-Expires")
        interval = None
        if value:
            with contextlib.suppress(ValueError):
                interval = max(float(value.split(";", 1)[0]), 90.0)
        timer.refreshed(asyncio.get_running_loop().time(), interval)

    async def _run_session_timer(self) -> None:
        loop = asyncio.get_running_loop()
        timer = self.session_timer
        while timer is not None and not self.ended.is_set():
            due = timer.get_timer()
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            action = timer.handle_timer(loop.time())
            if action is TimerAction.REFRESH and not await self._send_refresh():
                action = TimerAction.EXPIRE
            if action is TimerAction.EXPIRE:
                log.warning("session timer of %s expired: hanging up", self.peer)
                self._timer_task = None
                self.session_expired()
                return

    async def _send_refresh(self) -> bool:
        """Refresh the session (§7.4): UPDATE if the peer allows it, else re-INVITE."""
        assert self.session_timer is not None
        interval = int(self.session_timer.interval)
        if self.peer_allows_update or self.refresh_body is None:
            request = self.new_request("UPDATE")
        else:
            request = self.new_request("INVITE", self.refresh_body(), "application/sdp")
        request.add("Session-Expires", f"{interval};refresher=uas")
        request.add("Supported", SUPPORTED)
        response = await self.send(request)
        if response is not None and response.status // 100 == 2 and request.method == "INVITE":
            self.ack_2xx(request)
        return response is not None and response.status not in (408, 481)  # §10: else gone

    def session_expired(self) -> None:
        """No refresh came in time (or ours failed): BYE, and the bridge ends the call."""
        if self.listener is not None:
            self.listener.on_bye(self)
        elif not self.ended.is_set():
            asyncio.get_running_loop().create_task(self.bye())

    def ack_2xx(self, request: Request) -> None:
        """ACK the 2xx of an in-dialog re-INVITE we sent (§13.2.2.4)."""
        assert self.dialog is not None
        ack = self.dialog.create_request(
            "ACK", via_host=self.via_host, via_transport=self.transport, cseq=request.cseq.seq
        )
        self.mgr.port.send_stateless(ack, self.peer)

    def answer_2xx(self, key: ServerTransactionKey, response: Response) -> None:
        """Send a 2xx to an INVITE and retransmit it until the ACK (§13.3.1.4).

        The retransmissions are one timer handle rescheduled at T1, 2*T1...
        capped at T2, for 64*T1 in all; no Task per answered call.
        """
        self.mgr.port.send_response(key, response)
        self._stop_retransmit()
        self._retransmit = asyncio.get_running_loop().call_later(
            T1, self._retransmit_2xx, response, T1, 0.0
        )

    def _retransmit_2xx(self, response: Response, interval: float, waited: float) -> None:
        waited += interval
        self.mgr.port.send_stateless(response, self.peer)
        if waited < 64 * T1:
            interval = min(2 * interval, T2)
            self._retransmit = asyncio.get_running_loop().call_later(
                interval, self._retransmit_2xx, response, interval, waited
            )
            return
        log.warning("no ACK for the 2xx of %s: hanging up", response.call_id)
        self._retransmit = None
        if self.listener is not None and not self.ended.is_set():
            asyncio.get_running_loop().create_task(self._no_ack())

    async def _no_ack(self) -> None:
        listener = self.listener
        await self.bye()
        if listener is not None:
            listener.on_bye(self)

    def _stop_retransmit(self) -> None:
        handle, self._retransmit = self._retransmit, None
        if handle is not None:
            handle.cancel()

    def handle_ack(self, request: Request) -> None:
        """The ACK for our 2xx arrived; it may carry the answer to our offer."""
        self._stop_retransmit()
        if request.body and self.on_ack_sdp is not None:
            self.on_ack_sdp(self, request.body)

    def handle_stray_2xx(self, response: Response) -> None:
        """A retransmitted 2xx of our INVITE (only outbound legs resend the ACK)."""


class InboundLeg(Leg):
    """The caller's leg: we are the UAS of its INVITE."""

    def __init__(
        self, mgr: CallManager, key: ServerTransactionKey, invite: Request, source: Address
    ) -> None:
        local = source.local or mgr.port.default_local(source.transport)
        super().__init__(mgr, source, local)
        self.key = key
        self.invite = invite
        self.local_tag = new_tag()
        self.final_sent = False
        self.answered = False
        self.cancelled = asyncio.Event()
        self.ack_body = b""
        allowed = (m.strip().upper() for v in invite.get_all("Allow") for m in v.split(","))
        self.peer_allows_update = "UPDATE" in allowed
        mgr.invites[key] = self
        mgr.add_dialog(invite.call_id, self.local_tag, self)

    def respond(self, status: int, reason: str | None = None, *, body: bytes = b"",
                extra: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        """A provisional or a non-2xx final response to the INVITE."""
        if self.final_sent:
            return
        response = make_response(self.invite, status, reason, to_tag=self.local_tag)
        if 100 < status < 200:
            _copy_record_route(self.invite, response)
            response.add("Contact", self.contact)
            if self.dialog is None:
                self.dialog = Dialog.as_uas(self.invite, self.local_tag, self.contact)
        for name, value in extra:
            response.add(name, value)
        if body:
            response.add("Content-Type", "application/sdp")
            response.body = body
        if status >= 200:
            self.final_sent = True
            self.mgr.invites.pop(self.key, None)
        self.mgr.port.send_response(self.key, response)
        if status >= 300:
            self.finish()

    def answer(self, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """200 OK with our SDP; retransmitted until the ACK."""
        if self.final_sent:
            return
        response = make_response(self.invite, 200, to_tag=self.local_tag)
        _copy_record_route(self.invite, response)
        response.add("Contact", self.contact)
        response.add("Allow", ALLOW)
        response.add("Supported", SUPPORTED)
        response.add("Server", self.mgr.user_agent)
        for name, value in extra:
            response.add(name, value)
        if body:
            response.add("Content-Type", "application/sdp")
            response.body = body
        if self.dialog is None:
            self.dialog = Dialog.as_uas(self.invite, self.local_tag, self.contact)
        self.final_sent = True
        self.answered = True
        self.mgr.invites.pop(self.key, None)
        self.answer_2xx(self.key, response)

    def handle_ack(self, request: Request) -> None:
        if request.body:
            self.ack_body = request.body
        super().handle_ack(request)

    def handle_cancel(self) -> None:
        """CANCEL before the final response: 487 (§9.2)."""
        if not self.final_sent:
            self.cancelled.set()
            self.respond(487)
            if self.listener is not None:
                self.listener.on_bye(self)

    def finish(self) -> None:
        super().finish()
        self.mgr.invites.pop(self.key, None)
        self.mgr.remove_dialog(self.invite.call_id, self.local_tag)


class OutboundLeg(Leg):
    """A callee's leg: we are the UAC of an INVITE to one registered contact."""

    def __init__(
        self,
        mgr: CallManager,
        dest: Address,
        request_uri: str,
        *,
        from_value: str,
        to_value: str,
        body: bytes,
        extra: tuple[tuple[str, str], ...] = (),
        credentials: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        self._dialog: Dialog | None = None
        #: (username, password, realm) of the endpoint's outbound_auth, for 401/407.
        self.credentials = credentials
        self._challenged = False
        self._early_response: Response | None = None  # makes the early dialog when needed
        local = dest.local or mgr.port.default_local(dest.transport)
        super().__init__(mgr, dest, local)
        self.local_tag = new_tag()
        self.call_id = new_call_id(local[0])
        headers = [
            ("Via", f"SIP/2.0/{self.transport} {self.via_host};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{from_value};tag={self.local_tag}"),
            ("To", to_value),
            ("Call-ID", self.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", self.contact),
            ("Allow", ALLOW),
            ("User-Agent", mgr.user_agent),
            *extra,
        ]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.invite = Request("INVITE", request_uri, headers, body)
        self.responses: asyncio.Queue[Response | None] = asyncio.Queue()
        self.key: ClientTransactionKey | None = None
        self.provisional = False
        self.final: Response | None = None
        self.cancel_pending = False
        self.cancelled = False
        self._ack: Request | None = None
        #: Told after each response is queued (a Dialer waiting on several legs at once).
        self.notify: Callable[[OutboundLeg], None] | None = None

    def _queue(self, response: Response | None) -> None:
        self.responses.put_nowait(response)
        if self.notify is not None:
            self.notify(self)

    def start(self) -> None:
        """Send the INVITE."""
        self.key = self.mgr.send_request(self.invite, self.peer, self._on_response)

    def _on_response(self, response: Response | None) -> None:
        if response is None:
            if self.final is None:
                self.final = Response(408, "Request Timeout")
                self._queue(None)
            return
        status = response.status
        if status in (401, 407) and self._answer_challenge(response):
            return  # the INVITE went again with credentials (§22.2)
        if status < 200:
            self._early(response)
        elif status < 300:
            self._success(response)
            return
        elif self.final is None:
            self.final = response
            self.finish()
        else:
            return
        self._queue(response)

    def _answer_challenge(self, response: Response) -> bool:
        """Send the INVITE again with our credentials (RFC 3261 §22.2, §22.3); False if not.

        Once per call: a second challenge is the final answer.  The new INVITE
        keeps Call-ID, From tag and body, with the next CSeq and a new branch
        (§8.1.3.5); the transaction layer has ACKed the challenge.
        """
        if self._challenged or not self.credentials or self.cancelled or self.final:
            return False
        proxy = response.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        try:
            challenge = select_challenge(parse_auth_header(v) for v in response.get_all(name))
            if challenge is None:
                return False
            username, password = self._credentials_for(challenge.params.get("realm", ""))
            value = build_authorization(
                challenge, method="INVITE", uri=request_uri_text(self.invite), username=username,
                password=password, cnonce=secrets.token_hex(8),
            )  # fmt: skip
        except DigestError as exc:
            log.warning("cannot answer the %d of %s: %s", response.status, self.peer, exc)
            return False
        self._challenged = True
        invite = self.invite
        headers = [(k, v) for k, v in invite.headers if k not in ("via", "cseq")]
        via = f"SIP/2.0/{self.transport} {self.via_host};branch={new_branch()};rport"
        headers[:0] = [("Via", via), ("CSeq", f"{invite.cseq.seq + 1} INVITE")]
        headers.append(("Proxy-Authorization" if proxy else "Authorization", value))
        self.invite = Request("INVITE", request_uri_text(invite), headers, invite.body)
        self.key = self.mgr.send_request(self.invite, self.peer, self._on_response)
        return True

    def _credentials_for(self, realm: str) -> tuple[str, str]:
        """The outbound_auth whose realm is the challenge's, else the first (as Asterisk)."""
        for username, password, own_realm in self.credentials:
            if own_realm == realm:
                return username, password
        username, password, _ = self.credentials[0]
        return username, password

    @property
    def dialog(self) -> Dialog | None:
        """The dialog: the confirmed one, else the early one, built on first use.

        A provisional response with a To tag makes an early dialog (§12.1.2),
        but it is only needed if the callee sends a request before its final
        response, or we end the call with BYE before it; so it is built then,
        not on every 180.
        """
        if self._dialog is None and self._early_response is not None:
            response, self._early_response = self._early_response, None
            with contextlib.suppress(ParseError):
                self._dialog = Dialog.as_uac(self.invite, response)
        return self._dialog

    @dialog.setter
    def dialog(self, value: Dialog | None) -> None:
        self._dialog = value
        self._early_response = None

    def _early(self, response: Response) -> None:
        self.provisional = True
        if (
            response.to.tag
            and self._dialog is None
            and self._early_response is None
            and response.get("contact")
        ):
            self._early_response = response
            self.mgr.add_dialog(self.call_id, self.local_tag, self)
        if self.cancel_pending:
            self._send_cancel()

    def handle_request(self, key: ServerTransactionKey, request: Request) -> None:
        if self.dialog is None:  # the early dialog's response turned out unusable
            self.mgr.port.send_response(key, make_response(request, 481))
            return
        super().handle_request(key, request)

    def finish(self) -> None:
        if self._dialog is None and self._early_response is not None:
            self._early_response = None  # an early dialog never used: just forget it
            self.mgr.remove_dialog(self.call_id, self.local_tag)
        super().finish()

    def _success(self, response: Response) -> None:
        if self.final is not None and self.final.status // 100 == 2:
            self.handle_stray_2xx(response)  # a retransmission: ACK again
            return
        self.dialog = Dialog.as_uac(self.invite, response)
        self.mgr.add_dialog(self.call_id, self.local_tag, self)
        self.final = response
        self._ack = self.dialog.create_request(
            "ACK", via_host=self.via_host, via_transport=self.transport, cseq=self.invite.cseq.seq
        )
        self.mgr.port.send_stateless(self._ack, self.peer)
        if self.cancelled:
            # The 2xx crossed our CANCEL: the call is up at the callee; end it.
            asyncio.get_running_loop().create_task(self.bye())
            return
        self._queue(response)

    def handle_stray_2xx(self, response: Response) -> None:
        if self._ack is not None:
            self.mgr.port.send_stateless(self._ack, self.peer)

    def cancel(self) -> None:
        """Stop ringing (§9.1): CANCEL once a provisional came, else as soon as one does."""
        if self.final is not None or self.cancelled:
            return
        self.cancelled = True
        if self.provisional:
            self._send_cancel()
        else:
            self.cancel_pending = True

    def _send_cancel(self) -> None:
        self.cancel_pending = False
        with contextlib.suppress(ValueError):
            self.mgr.send_request(build_cancel(self.invite), self.peer, lambda _r: None)


def _copy_record_route(request: Request, response: Response) -> None:
    """A dialog-creating response carries the request's Record-Route (RFC 3261 §12.1.1).

    Without it a phone behind a record-routing proxy (Kamailio, the
    balancer) sends its BYE straight to the PBX, and the proxy, with the
    media relay it drives, never learns the call ended.
    """
    for value in request.get_all("record-route"):
        response.add("Record-Route", value)

def _expire(future: asyncio.Future[Response | None]) -> None:
    """An in-dialog request's wait is over: no final response (None)."""
    if not future.done():
        future.set_result(None)
