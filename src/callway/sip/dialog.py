"""Dialogs (RFC 3261 §12): identity, route set, CSeq spaces, target refresh.

A :class:`Dialog` is plain state plus the rules to build in-dialog requests
(§12.2.1.1, loose and strict routing) and to check incoming ones (§12.2.2).
It never sends anything; the B2BUA decides where a request goes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from callway.sip.errors import ParseError
from callway.sip.headers import NameAddr, parse_name_addr
from callway.sip.message import Request, Response
from callway.sip.transaction.builders import new_branch
from callway.sip.uri import SipURI


def new_tag() -> str:
    """A From/To tag with 64 random bits (§19.3)."""
    return secrets.token_hex(8)


def new_call_id(host: str) -> str:
    """A globally unique Call-ID (§8.1.1.4)."""
    return f"{secrets.token_hex(12)}@{host}"


def _without_tag(value: str) -> str:
    """A From/To value with its tag parameter removed (kept otherwise verbatim)."""
    addr = parse_name_addr(value)
    addr.params.pop("tag", None)
    return str(addr)


@dataclass(slots=True)
class Dialog:
    """One side's view of a dialog (§12)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    local_contact: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False

    @property
    def id(self) -> tuple[str, str, str]:
        """Call-ID, local tag, remote tag (§12)."""
        return self.call_id, self.local_tag, self.remote_tag

    # -- creation -----------------------------------------------------------------

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, local_contact: str) -> Dialog:
        """The dialog a UAS creates by answering ``request`` (§12.1.1)."""
        contacts = request.contacts
        if not contacts:
            raise ParseError("dialog-creating request without Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_without_tag(request.get("to") or ""),
            remote_uri=_without_tag(request.get("from") or ""),
            remote_target=str(contacts[0].uri),
            local_contact=local_contact,
            route_set=request.get_all("record-route"),
            remote_seq=request.cseq.seq,
            secure=isinstance(request.uri, SipURI) and request.uri.secure,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a UAC gets from a response with a To tag (§12.1.2)."""
        contacts = response.contacts
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_without_tag(request.get("from") or ""),
            remote_uri=_without_tag(request.get("to") or ""),
            remote_target=str(contacts[0].uri) if contacts else str(request.uri),
            local_contact=request.get("contact") or "",
            route_set=list(reversed(response.get_all("record-route"))),
            local_seq=request.cseq.seq,
            secure=isinstance(request.uri, SipURI) and request.uri.secure,
        )

    # -- requests within the dialog -----------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        via_host: str,
        via_transport: str = "UDP",
        body: bytes = b"",
        content_type: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        cseq: int | None = None,
    ) -> Request:
        """Build a request within the dialog (§12.2.1.1).

        ``cseq`` overrides the number (the ACK of a 2xx reuses the INVITE's,
        §13.2.2.4); otherwise the local sequence number is incremented for
        every method but ACK and CANCEL.
        """
        if cseq is None:
            if method not in ("ACK", "CANCEL"):
                self.local_seq += 1
            cseq = self.local_seq
        uri, routes = self._target_and_routes()
        to = f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri
        headers = [
            ("Via", f"SIP/2.0/{via_transport} {via_host};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        headers += [("Route", route) for route in routes]
        if method not in ("ACK", "CANCEL", "BYE") and self.local_contact:
            headers.append(("Contact", self.local_contact))
        headers += list(extra)
        if body and content_type:
            headers.append(("Content-Type", content_type))
        return Request(method, uri, headers, body)

    def _target_and_routes(self) -> tuple[str, list[str]]:
        """Loose routing keeps the target; strict routing puts it last (§12.2.1.1)."""
        if not self.route_set:
            return self.remote_target, []
        first = parse_name_addr(self.route_set[0])
        if isinstance(first.uri, SipURI) and "lr" in first.uri.params:
            return self.remote_target, list(self.route_set)
        uri = first.uri
        if isinstance(uri, SipURI):
            uri = uri.copy()
            uri.params.pop("method", None)
            uri.headers.clear()
        return str(uri), [*self.route_set[1:], f"<{self.remote_target}>"]

    def receive_request(self, request: Request) -> bool:
        """Check a request's CSeq (§12.2.2); False means answer 500."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def refresh_target(self, message: Request | Response) -> None:
        """Adopt a new remote target from a target refresh (§12.2.1.2, §12.2.2)."""
        contacts: list[NameAddr] = message.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)
