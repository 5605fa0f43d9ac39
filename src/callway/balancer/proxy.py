"""Proxy rules of the balancer (RFC 3261 §16), free of sockets and clocks.

The balancer is a record-routing, transaction-stateful proxy:

* initial requests (no To tag, no Route to follow) are dispatched to a node
  chosen by the dispatcher algorithm;
* in-dialog requests follow their Route set (loose routing, §16.4, §16.12),
  so routing needs no per-call memory and survives a balancer restart;
* INVITEs get a Record-Route naming the balancer (§16.6 step 4) and
  REGISTERs a Path (RFC 3327) that also carries the phone's real source
  address, so requests from a PBX node reach a phone behind NAT;
* responses lose our Via and go to the next one (§16.7 step 3, §18.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from callway.core.address import Address
from callway.sip.errors import ParseError
from callway.sip.headers import NameAddr, Via, parse_name_addr
from callway.sip.message import Request, Response
from callway.sip.uri import SipURI

RECORD_ROUTE_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
# URI parameter of our Path/Record-Route entries holding the phone's source address.
RECEIVED_PARAM = "cw-recv"


@dataclass(frozen=True, slots=True)
class Identity:
    """How the balancer names itself: the address in Via, Record-Route and Path.

    ``via_port`` (when not 0) is the port our Via names instead of ``port``: a
    worker process of a multi-process balancer sends its requests from a
    private port, so their answers come back to it.
    """

    host: str
    port: int
    transport: str = "udp"
    aliases: frozenset[str] = frozenset()
    via_port: int = 0

    def is_me(self, uri: SipURI) -> bool:
        """True if ``uri`` points at this balancer (any of its addresses, any port)."""
        return uri.host == self.host or uri.host in self.aliases

    def uri(self, **params: str | None) -> str:
        """``sip:host:port;lr`` plus ``params``."""
        extra = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
        transport = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:{self.host}:{self.port}{transport};lr{extra}>"


def uri_address(
    uri: SipURI, default_transport: str = "udp", *, follow_received: bool = True
) -> Address:
    """Where a SIP URI sends us (numeric hosts; RFC 3263 would resolve names).

    ``follow_received``: a Path/Record-Route entry of ours carrying the
    phone's real address leads there (the balancer's view); a PBX node
    sending to that entry wants the balancer itself (False).
    """
    received = uri.params.get(RECEIVED_PARAM) if follow_received else None
    if received:
        kind, _, hostport = received.partition("~")
        where, _, port_text = hostport.rpartition("-")
        return Address(kind or default_transport, where, int(port_text))
    transport = uri.transport or ("tls" if uri.secure else default_transport)
    number = uri.port or (5061 if transport == "tls" else 5060)
    host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
    return Address(transport, host, number)


def encode_received(source: Address) -> str:
    """A URI-parameter-safe form of a source address (for Path/Record-Route)."""
    return f"{source.transport}~{source.host}-{source.port}"


def strip_own_route(request: Request, me: Identity) -> SipURI | None:
    """Pop the top Route if it is ours (§16.4); return it."""
    top = request.get_all("route")
    if not top:
        return None
    first = parse_name_addr(top[0])
    if isinstance(first.uri, SipURI) and me.is_me(first.uri):
        request.pop_first("route")
        return first.uri
    return None


def next_hop(request: Request) -> Address | None:
    """The next hop of a request with a Route set or a target (§16.6 step 6-7)."""
    routes = request.get_all("route")
    uri = parse_name_addr(routes[0]).uri if routes else request.uri
    if not isinstance(uri, SipURI):
        return None
    return uri_address(uri)


def is_initial(request: Request) -> bool:
    """An out-of-dialog request the dispatcher must place (no To tag, no Route)."""
    return request.to.tag is None and not request.get_all("route")


def decrement_max_forwards(request: Request) -> None:
    """§16.6 step 3; raise ParseError(483) when it is exhausted (§16.3 step 3)."""
    value = request.max_forwards
    if value is None:
        request.set("Max-Forwards", "70")
        return
    if value <= 0:
        raise ParseError("Max-Forwards exhausted", 483)
    request.set("Max-Forwards", str(value - 1))


def detect_loop(request: Request, me: Identity, branch_prefix: str) -> None:
    """§16.3 step 4: our own Via with a branch of ours already in the path.

    Only Via lines holding our branch prefix are parsed (usually none).
    """
    if not any(branch_prefix in v for k, v in request.headers if k == "via"):
        return
    for via in request.vias:
        if (
            via.host == me.host
            and (via.port or 5060) in (me.port, me.via_port)
            and (via.branch or "").startswith(branch_prefix)
        ):
            raise ParseError("Loop Detected", 482)


def add_record_route(request: Request, me: Identity) -> None:
    """§16.6 step 4 for dialog-creating requests."""
    if request.method in RECORD_ROUTE_METHODS and request.to.tag is None:
        request.prepend("Record-Route", me.uri())


def add_path(request: Request, me: Identity, source: Address) -> None:
    """RFC 3327 §5: Path for REGISTER, carrying the phone's real address."""
    request.prepend("Path", me.uri(**{RECEIVED_PARAM: encode_received(source)}))
    supported = request.get("supported")
    if supported is None:
        request.add("Supported", "path")
    elif "path" not in supported.lower():
        request.set("Supported", f"{supported}, path")


def push_via(request: Request, me: Identity, branch: str) -> None:
    """Our Via on top (§16.6 step 8)."""
    port = me.via_port or me.port
    via = Via(me.transport.upper(), me.host, port, {"branch": branch, "rport": None})
    request.prepend("Via", str(via))


def pop_via(response: Response, me: Identity) -> Address | None:
    """Remove our Via from a response; return where it goes next (§16.7, §18.2.2).

    None means the response is not for us (drop it, §16.7 step 1) or has no
    further Via.
    """
    try:
        if response.via.host != me.host:
            return None
    except ParseError:
        return None
    response.pop_first("via")
    try:
        return via_address(response.via)
    except ParseError:
        return None  # ours was the only Via


def via_address(via: Via) -> Address:
    """RFC 3261 §18.2.2 / RFC 3581 §4: received and rport win over sent-by."""
    host = via.params.get("received") or via.host
    rport = via.params.get("rport")
    port = int(rport) if rport and rport.isascii() and rport.isdigit() else (via.port or 5060)
    return Address(via.transport.lower(), host.strip("[]"), port)


def request_route_user(request: Request) -> str:
    """The Request-URI user (algorithm 3)."""
    uri = request.uri
    return (uri.user or "") if isinstance(uri, SipURI) else ""


def to_user(request: Request) -> str:
    """The To URI user: registrations of one user stick to one node."""
    uri = request.to.uri
    return (uri.user or "") if isinstance(uri, SipURI) else ""


def name_addr_uri(value: str) -> str:
    """The URI text of a name-addr (for hashing From/To)."""
    addr: NameAddr = parse_name_addr(value)
    return str(addr.uri)
