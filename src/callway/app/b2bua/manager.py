"""The call side of the PBX's transaction user: routes SIP events to call legs.

The B2BUA's legs are asyncio objects (they wait for answers, timeouts and
ACKs), so this lives in the shell layer.  It keeps three tables:

* dialogs by (Call-ID, local tag) for in-dialog requests and ACKs (§12.2.2);
* INVITE server transactions by key, so a CANCEL finds its call (§9.2);
* client transactions by key, each with a callback for its responses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from callway.app.nat import NatPolicy
from callway.core.address import Address
from callway.sip.message import Request, Response, make_response
from callway.sip.transaction import ClientTransactionKey, ServerTransactionKey

if TYPE_CHECKING:
    from callway.app.b2bua.legs import InboundLeg, Leg

log = logging.getLogger("callway.b2bua")

ResponseHandler = Callable[[Response | None], None]


class SipPort(Protocol):
    """What the legs need from the SIP stack."""

    def send_response(self, key: object, response: Response) -> None:
        """Answer through a server transaction."""

    def send_request(self, request: Request, dest: Address) -> object:
        """Start a client transaction; return its key."""

    def send_stateless(self, message: Request | Response, dest: Address) -> None:
        """Send outside any transaction (ACK for 2xx, 2xx retransmissions)."""

    def default_local(self, transport: str) -> tuple[str, int]:
        """The local address used when nothing better is known."""


class CallManager:
    """Routes transaction events to legs."""

    def __init__(self, port: SipPort, *, user_agent: str = "callway") -> None:
        self.port = port
        self.user_agent = user_agent
        #: external addresses for a PBX behind NAT (transport ``external_*``, ``local_net``)
        self.nat = NatPolicy()
        self.dialogs: dict[tuple[str, str], Leg] = {}
        self.invites: dict[ServerTransactionKey, InboundLeg] = {}
        self._handlers: dict[ClientTransactionKey, ResponseHandler] = {}

    # -- bookkeeping -------------------------------------------------------------

    @property
    def pending_requests(self) -> int:
        """Client transactions still waiting for their final response."""
        return len(self._handlers)

    def add_dialog(self, call_id: str, local_tag: str, leg: Leg) -> None:
        """Make in-dialog requests with this Call-ID and To tag reach ``leg``."""
        self.dialogs[(call_id, local_tag)] = leg

    def remove_dialog(self, call_id: str, local_tag: str) -> None:
        """Forget a dialog."""
        self.dialogs.pop((call_id, local_tag), None)

    def send_request(
        self, request: Request, dest: Address, handler: ResponseHandler
    ) -> ClientTransactionKey:
        """Start a client transaction whose responses go to ``handler``."""
        key = self.port.send_request(request, dest)
        assert isinstance(key, ClientTransactionKey)
        self._handlers[key] = handler
        return key

    def request(self, request: Request, dest: Address) -> asyncio.Future[Response | None]:
        """Send a request; the future gets its final response (None on timeout)."""
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()

        def on_response(response: Response | None) -> None:
            if response is not None and response.status < 200:
                return
            if not future.done():
                future.set_result(response)

        self.send_request(request, dest, on_response)
        return future

    # -- events ------------------------------------------------------------------------

    def handle_in_dialog(self, key: ServerTransactionKey, request: Request) -> Response | None:
        """A request with a To tag: hand it to its leg, or answer 481 (§12.2.2)."""
        leg = self.dialogs.get((request.call_id, request.to.tag or ""))
        if leg is None:
            return make_response(request, 481)
        leg.handle_request(key, request)
        return None

    def handle_ack(self, request: Request) -> None:
        """An ACK for a 2xx: the leg stops retransmitting (§13.3.1.4)."""
        leg = self.dialogs.get((request.call_id, request.to.tag or ""))
        if leg is not None:
            leg.handle_ack(request)

    def handle_cancel(
        self,
        request: Request,
        invite_key: ServerTransactionKey | None,
        respond: Callable[[Response], None],
    ) -> None:
        """CANCEL (§9.2): 200 for the CANCEL first, then the leg answers the INVITE 487.

        ``respond`` sends the CANCEL's own response; 481 when no INVITE matches.
        """
        leg = self.invites.get(invite_key) if invite_key is not None else None
        if leg is None:
            respond(make_response(request, 481))
            return
        respond(make_response(request, 200))
        leg.handle_cancel()

    def handle_response(self, key: ClientTransactionKey, response: Response) -> None:
        """A response of one of our client transactions."""
        handler = self._handlers.get(key)
        if handler is None:
            self.handle_stray(response)  # e.g. a 2xx retransmission (RFC 6026 Accepted)
            return
        if response.status >= 200:
            del self._handlers[key]
        handler(response)

    def handle_timeout(self, key: object) -> None:
        """Timer B/F fired: the request got no answer (a 408 for the TU, §8.1.3.1)."""
        if isinstance(key, ClientTransactionKey):
            handler = self._handlers.pop(key, None)
            if handler is not None:
                handler(None)

    def handle_stray(self, response: Response) -> None:
        """A 2xx retransmission after the INVITE transaction ended: re-ACK it (§13.2.2.4)."""
        if response.status // 100 != 2:
            return
        leg = self.dialogs.get((response.call_id, response.from_.tag or ""))
        if leg is not None:
            leg.handle_stray_2xx(response)

    def forget_transaction(self, key: ClientTransactionKey) -> None:
        """Drop the handler of an INVITE transaction that is over for us."""
        self._handlers.pop(key, None)
