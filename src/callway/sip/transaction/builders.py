"""Requests the transaction layer builds: branch ids, ACK for non-2xx, CANCEL.

Header values are copied as they are on the wire, so the ACK and CANCEL carry
exactly the From, Call-ID, Via and Route the peer saw in the original request.
"""

from __future__ import annotations

import secrets

from callway.sip.message import Request, Response

MAGIC_COOKIE = "z9hG4bK"
"""Every RFC 3261 branch id starts with this (§8.1.1.7)."""

_DEFAULT_MAX_FORWARDS = "70"


def new_branch() -> str:
    """A fresh branch id: the magic cookie plus 96 random bits (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


def build_ack(request: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 response (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE, CSeq method
    ACK, To from the response (it carries the UAS tag), a single Via equal to
    the INVITE's top Via (so the ACK matches the server transaction,
    §17.2.3) and the INVITE's Route header fields.  The ACK for a 2xx is a
    new transaction built by the dialog (§13.2.2.4), not by this function.
    """
    return _in_transaction_request(request, "ACK", to=_required(response, "to"))


def build_cancel(request: Request) -> Request:
    """A CANCEL for ``request`` (§9.1).

    Request-URI, Call-ID, To, From and CSeq number equal the request's (tags
    included), CSeq method CANCEL, a single Via equal to the request's top Via
    (same branch: the server matches it to the INVITE, §9.2) and the request's
    Route header fields.  The CANCEL has no body.
    """
    return _in_transaction_request(request, "CANCEL", to=_required(request, "to"))


def _in_transaction_request(request: Request, method: str, *, to: str) -> Request:
    top_via = request.get_all("via")
    if not top_via:
        raise ValueError("the request has no Via header")
    headers: list[tuple[str, str]] = [
        ("Via", top_via[0]),
        ("Max-Forwards", request.get("max-forwards") or _DEFAULT_MAX_FORWARDS),
        ("From", _required(request, "from")),
        ("To", to),
        ("Call-ID", _required(request, "call-id")),
        ("CSeq", f"{request.cseq.seq} {method}"),
    ]
    headers += [("Route", value) for key, value in request.headers if key == "route"]
    return Request(method, request_uri_text(request), headers)


def request_uri_text(request: Request) -> str:
    """The Request-URI exactly as on the wire (a URI has no spaces, §25.1)."""
    return request.start_line().split(" ")[1]


def _required(message: Request | Response, name: str) -> str:
    value = message.get(name)
    if value is None:
        raise ValueError(f"the message has no {name} header")
    return value
