"""The PBX as a transaction user: dispatch of incoming requests by method.

REGISTER goes to the :class:`~callway.pbx.registrar.Registrar`; OPTIONS to
the server itself is answered 200 with what we support (RFC 3261 §11.2);
methods we do not implement get 405 with Allow (§8.2.1) and unknown
in-dialog requests 481 (§12.2.2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from callway.core.address import Address
from callway.pbx.registrar import Registrar
from callway.sip.errors import ParseError
from callway.sip.message import Request, Response, make_response
from callway.sip.transaction import RequestReceived, TransactionEvent
from callway.sip.validate import validate_request

log = logging.getLogger("callway.pbx")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, NOTIFY, REFER"
ACCEPT = "application/sdp"
SUPPORTED = "path"
SUPPORTED_TAGS = ("path",)
ACCEPT_TYPES = ("application/sdp", "multipart/mixed", "text/plain", "message/sipfrag")

SendResponse = Callable[[object, Response], None]


class PbxCore:
    """Request dispatch of the PBX (sans-I/O: responses go out through ``send``)."""

    def __init__(self, registrar: Registrar, send: SendResponse, *, user_agent: str) -> None:
        self.registrar = registrar
        self.send = send
        self.user_agent = user_agent

    def handle_event(self, event: TransactionEvent, now: float) -> None:
        """React to one transaction event."""
        if isinstance(event, RequestReceived):
            self.respond(event.key, self.handle_request(event.request, event.source, now))

    def respond(self, key: object, response: Response | None) -> None:
        """Send a response (if any) with our Server header."""
        if response is not None:
            response.set("Server", self.user_agent)
            self.send(key, response)

    def handle_request(self, request: Request, source: Address, now: float) -> Response | None:
        """The response to a request outside any dialog we know of."""
        rejection = validation_response(request)
        if rejection is not True:
            return rejection or None
        return self.dispatch(request, source, now)

    def dispatch(self, request: Request, source: Address, now: float) -> Response | None:
        """The response to a validated request outside any dialog."""
        method = request.method
        try:
            if method == "REGISTER":
                return self.registrar.handle_register(request, source, now)
            if method == "OPTIONS":
                return self._options(request)
        except ParseError as exc:
            return make_response(request, exc.status_hint or 400, _reason(exc))
        if request.to.tag is not None and method not in ("ACK",):
            return make_response(request, 481)
        if method == "ACK":
            return None
        if method == "CANCEL":
            return make_response(request, 481)
        response = make_response(request, 405, to_tag=self.registrar.auth.tag())
        response.add("Allow", ALLOW)
        return response

    def _options(self, request: Request) -> Response:
        """RFC 3261 §11.2: 200 with Allow, Accept, Supported."""
        response = make_response(request, 200, to_tag=self.registrar.auth.tag())
        response.add("Allow", ALLOW)
        response.add("Accept", ACCEPT)
        response.add("Supported", SUPPORTED)
        response.add("Accept-Language", "en")
        return response


def validation_response(request: Request) -> Response | bool:
    """Check a request (RFC 3261 §8.2): True if fine, False to drop it, else the rejection."""
    try:
        validate_request(request, supported=SUPPORTED_TAGS, accept=ACCEPT_TYPES)
    except ParseError as exc:
        if exc.status_hint is None:
            return False
        response = make_response(request, exc.status_hint, _reason(exc))
        for name, value in exc.headers:
            response.add(name, value)
        return response
    return True


def _reason(exc: ParseError) -> str | None:
    """A reason phrase telling what was wrong with a 400; the standard one otherwise."""
    if exc.status_hint not in (400, None):
        return None
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in exc.reason)
    return f"Bad Request ({text[:80]})"
