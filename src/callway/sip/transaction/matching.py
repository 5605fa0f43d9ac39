"""Which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3, §9.2).

These functions read the top Via and CSeq; a message without them raises
:class:`~callway.sip.errors.ParseError` (the transport shell answers 400 to a
request, drops a response, §18.1.2).
"""

from __future__ import annotations

from callway.sip.headers import Via
from callway.sip.message import Request, Response
from callway.sip.transaction.builders import MAGIC_COOKIE, request_uri_text
from callway.sip.transaction.events import (
    LEGACY_PREFIX,
    ClientTransactionKey,
    ServerTransactionKey,
)


def client_key(message: Request | Response) -> ClientTransactionKey | None:
    """The client transaction of a response, or of a request we sent (§17.1.3).

    A response matches if its top Via branch equals the request's and its
    CSeq method equals the request's method (a CANCEL's response thus never
    matches the INVITE).  The ACK of a non-2xx belongs to the INVITE.  None if
    the top Via has no branch.
    """
    branch = message.via.branch
    if not branch:
        return None
    if isinstance(message, Response):
        return ClientTransactionKey(branch, message.cseq.method)
    return ClientTransactionKey(branch, "INVITE" if message.method == "ACK" else message.method)


def server_key(request: Request, *, method: str | None = None) -> ServerTransactionKey:
    """The server transaction a request belongs to (§17.2.3).

    With a ``z9hG4bK`` branch: top Via branch and sent-by, plus the method,
    except that ACK matches the INVITE.  ``method`` overrides the method (the
    CANCEL lookup of §9.2).  Without the cookie, the RFC 2543 rules: the
    Request-URI, To tag, From tag, Call-ID, CSeq number and top Via must all
    be equal.
    """
    via = request.via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return ServerTransactionKey(branch, sent_by(via), method)
    return _legacy_key(request, via, method, request.to.tag)


def legacy_ack_key(invite: Request, response: Response) -> ServerTransactionKey | None:
    """For an RFC 2543 INVITE: the key its ACK will have once ``response`` is sent.

    §17.2.3: such an ACK matches when its To tag equals the To tag of the
    response sent by the server transaction (not the INVITE's).  None for
    RFC 3261 branches, where the ACK has the INVITE's key already.
    """
    branch = invite.via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return None
    return _legacy_key(invite, invite.via, "INVITE", response.to.tag)


def response_server_key(response: Response) -> ServerTransactionKey | None:
    """The server transaction that sent ``response`` (RFC 3261 branches only).

    A response copies the request's Via and CSeq (§8.2.6.2), so its key is the
    request's.  None for RFC 2543 requests, whose key needs the Request-URI.
    """
    via = response.via
    if not via.branch or not via.branch.startswith(MAGIC_COOKIE):
        return None
    return ServerTransactionKey(via.branch, sent_by(via), response.cseq.method)


def sent_by(via: Via) -> tuple[str, int]:
    """The Via sent-by with the host lower-cased and the default port filled in (§18.2.1)."""
    port = via.port
    if port is None:
        port = 5061 if via.transport.upper() in ("TLS", "WSS") else 5060
    return via.host.lower(), port


def _legacy_key(
    request: Request, via: Via, method: str, to_tag: str | None
) -> ServerTransactionKey:
    identity = "|".join(
        (
            str(via),
            request_uri_text(request),
            request.call_id,
            request.from_.tag or "",
            to_tag or "",
            str(request.cseq.seq),
        )
    )
    return ServerTransactionKey(LEGACY_PREFIX + identity, sent_by(via), method)
