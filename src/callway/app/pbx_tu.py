"""The PBX's transaction user: routes SIP events to the registrar or to calls."""

from __future__ import annotations

import logging

from callway.app.b2bua.manager import CallManager
from callway.app.b2bua.service import CallService
from callway.ops.logs import current_call_id
from callway.pbx.core import PbxCore, validation_response
from callway.sip.message import Message
from callway.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionEvent,
    TransactionLayer,
    TransactionTimeout,
)

log = logging.getLogger("callway.pbx")


class PbxTransactionUser:
    """Dispatches transaction events (RFC 3261 §8.2, §12.2.2, §9.2)."""

    def __init__(
        self, core: PbxCore, calls: CallService, manager: CallManager, layer: TransactionLayer
    ) -> None:
        self.core = core
        self.calls = calls
        self.manager = manager
        self.layer = layer

    def handle_event(self, event: TransactionEvent, now: float) -> None:
        """One event from the transaction layer, logged under its message's Call-ID.

        The Call-ID is set and reset with the context variable's token, not the
        generator-based ``call_context``: this runs for every message of every call.
        """
        if type(event) is RequestReceived:
            message: Message | None = event.request
        else:
            message = getattr(event, "request", None) or getattr(event, "response", None)
        token = current_call_id.set(message.get("call-id") if message is not None else None)
        try:
            self._dispatch(event, now)
        finally:
            current_call_id.reset(token)

    def _dispatch(self, event: TransactionEvent, now: float) -> None:
        if isinstance(event, RequestReceived):
            self._request(event, now)
        elif isinstance(event, AckReceived):
            self.manager.handle_ack(event.request)
        elif isinstance(event, ResponseReceived):
            self.manager.handle_response(event.key, event.response)
        elif isinstance(event, TransactionTimeout):
            self.manager.handle_timeout(event.key)
        elif isinstance(event, StrayResponse):
            self.manager.handle_stray(event.response)

    def _request(self, event: RequestReceived, now: float) -> None:
        request, key = event.request, event.key
        rejection = validation_response(request)
        if rejection is False:
            return
        if rejection is not True:
            self.core.respond(key, rejection)
            return
        method = request.method
        if method == "CANCEL":
            invite_key = self.layer.find_invite_server_transaction(request)
            self.manager.handle_cancel(
                request, invite_key, lambda response: self.core.respond(key, response)
            )
            return
        if request.to.tag is not None:
            self.core.respond(key, self.manager.handle_in_dialog(key, request))
            return
        if method == "INVITE":
            self.calls.handle_invite(key, request, event.source)
            return
        self.core.respond(key, self.core.dispatch(request, event.source, now))
