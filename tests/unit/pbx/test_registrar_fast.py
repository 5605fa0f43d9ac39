"""The REGISTER fast path answers byte for byte as the ordinary path, or leaves it alone.

Two PBX cores share one config: one gets each datagram through
:class:`FastRegistrar` (falling back to the ordinary path when it declines),
the other always through the ordinary path (parse, Via stamping, validation,
``PbxCore.dispatch``, the Server header).  Their responses and their
location services must stay identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from callway.config.pjsip import parse_pjsip
from callway.core.address import Address
from callway.pbx.auth import Authenticator
from callway.pbx.core import PbxCore, validation_response
from callway.pbx.location import Location
from callway.pbx.registrar import Registrar
from callway.pbx.registrar_fast import FastRegistrar
from callway.sip.errors import ParseError
from callway.sip.message import Request, Response, parse_message
from callway.sip.transaction import TransactionLayer
from callway.transport.stack import _stamp_via

CONF = """
[phone]
type=endpoint
aors=phone
[phone]
type=aor
max_contacts=1
remove_existing=yes

[multi]
type=endpoint
aors=multi
[multi]
type=aor
max_contacts=3
minimum_expiration=60
default_expiration=1200
maximum_expiration=3600

[full]
type=endpoint
aors=full
[full]
type=aor
max_contacts=1

[natted]
type=endpoint
aors=natted
rewrite_contact=yes
[natted]
type=aor
max_contacts=1
remove_existing=yes

[secret]
type=auth
auth_type=userpass
username=secure
password=pw
[secure]
type=endpoint
aors=secure
auth=secret
[secure]
type=aor
max_contacts=1
"""

SOURCE = Address("udp", "192.0.2.10", 40000, ("127.0.0.1", 5060))
SERVER = "callway test"
NOW = 1_000_000.0


@dataclass
class Node:
    registrar: Registrar
    core: PbxCore
    layer: TransactionLayer
    fast: FastRegistrar

    def ordinary(self, data: bytes, source: Address, now: float) -> bytes | None:
        """What SipStack + PbxTransactionUser do with a REGISTER outside a dialog."""
        message = parse_message(data)
        assert isinstance(message, Request)
        _stamp_via(message, source)
        rejection = validation_response(message)
        if rejection is False:
            return None
        response = (
            rejection if isinstance(rejection, Response) else
            self.core.dispatch(message, source, now)
        )  # fmt: skip
        assert response is not None
        sent: list[Response] = []
        self.core.send = lambda _key, r: sent.append(r)
        self.core.respond(None, response)
        return sent[0].to_bytes()


def make_node() -> Node:
    config = parse_pjsip(CONF, "pjsip.conf")
    location = Location()
    auth = Authenticator(config)
    registrar = Registrar(config, location, auth)
    layer = TransactionLayer()
    core = PbxCore(registrar, lambda _key, _response: None, user_agent=SERVER)
    return Node(registrar, core, layer, FastRegistrar(registrar, layer, SERVER))


@pytest.fixture(autouse=True)
def fixed_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Authenticator, "tag", staticmethod(lambda: "t4g"))


@pytest.fixture
def nodes() -> Iterator[tuple[Node, Node]]:
    yield make_node(), make_node()


_branches = iter(range(1, 1_000_000))


def register(
    user: str = "phone",
    *,
    via: str | None = None,
    contact: str | None = None,
    extra: tuple[str, ...] = ("Expires: 3600",),
    call_id: str = "call-1@192.0.2.10",
    cseq: int = 1,
    from_: str | None = None,
    to: str | None = None,
    names: dict[str, str] | None = None,
    body: str = "",
    first: tuple[str, ...] = (),
) -> bytes:
    n = names or {}
    via = via or f"SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bK-{next(_branches)}"
    lines = [
        "REGISTER sip:127.0.0.1:5060 SIP/2.0",
        *first,
        f"{n.get('via', 'Via')}: {via}",
        "Max-Forwards: 70",
        f"{n.get('from', 'From')}: {from_ or f'<sip:{user}@127.0.0.1>;tag=ab{cseq}'}",
        f"{n.get('to', 'To')}: {to or f'<sip:{user}@127.0.0.1>'}",
        f"{n.get('call-id', 'Call-ID')}: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"{n.get('contact', 'Contact')}: {contact or f'<sip:{user}@192.0.2.10:40000>'}",
        *extra,
        "User-Agent: test-phone/1.0",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def both(
    nodes: tuple[Node, Node], data: bytes, source: Address = SOURCE, now: float = NOW
) -> tuple[bytes | None, bytes | None]:
    """(fast node's answer, ordinary node's answer); also whether the fast path took it."""
    fast_node, plain = nodes
    answered = fast_node.fast.answered
    got = fast_node.fast.handle(data, source, now)
    if got is None:
        got = fast_node.ordinary(data, source, now)
    else:
        assert fast_node.fast.answered == answered + 1
    expected = plain.ordinary(data, source, now)
    assert got == expected
    assert fast_node.registrar.location.all(now) == plain.registrar.location.all(now)
    return got, expected


FAST_CASES = {
    "sipp": register(),
    "rport": register(via="SIP/2.0/UDP 192.0.2.10:40000;rport;branch=z9hG4bK-rp1"),
    "received": register(via="SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-nat1"),
    "contact-expires": register(contact="<sip:phone@192.0.2.10:40000>;expires=120"),
    "display-names": register(
        from_='"Phone" <sip:phone@127.0.0.1>;tag=x1', to='"Phone" <sip:phone@127.0.0.1>'
    ),
    "compact": register(names={"via": "v", "from": "f", "to": "t", "call-id": "i", "contact": "m"}),
    "call-id-spelling": register(names={"call-id": "Call-Id"}),
    "no-expires": register("multi", extra=()),
    "clamped": register("multi", extra=("Expires: 7200",)),
    "uri-params": register(contact="<sip:phone@192.0.2.10:40000;transport=udp;ob>"),
    "natted": register("natted", contact="<sip:natted@10.0.0.7:5060>"),
    "allow-supported": register(extra=("Expires: 600", "Allow: INVITE, ACK", "Supported: path")),
}


@pytest.mark.parametrize("name", sorted(FAST_CASES))
def test_fast_answer_equals_the_ordinary_one(nodes: tuple[Node, Node], name: str) -> None:
    got, _ = both(nodes, FAST_CASES[name])
    assert got is not None and got.startswith(b"SIP/2.0 200 OK\r\n")
    assert nodes[0].fast.answered == 1


def test_via_after_other_headers_and_stamped(nodes: tuple[Node, Node]) -> None:
    data = register(
        via="SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK-late;rport", first=("Expires: 60",),
        extra=(),
    )  # fmt: skip
    got, _ = both(nodes, data)
    assert got is not None and got.split(b"\r\n")[1].startswith(b"Via: ")
    assert nodes[0].fast.answered == 1


def test_refreshes_and_several_contacts_match(nodes: tuple[Node, Node]) -> None:
    for cseq, port in enumerate((1111, 2222, 1111, 3333), start=1):
        contact = f"<sip:multi@192.0.2.10:{port}>"
        both(nodes, register("multi", contact=contact, cseq=cseq), now=NOW + cseq)
    assert nodes[0].fast.answered == 4
    got, _ = both(nodes, register("multi", contact="<sip:multi@192.0.2.10:4444>", cseq=9))
    assert nodes[0].fast.answered == 4  # a fourth contact: 403 from the ordinary path
    assert got is not None and got.startswith(b"SIP/2.0 403")


DECLINED = {
    "authorization": register(extra=('Authorization: Digest username="phone"',)),
    "to-tag": register(to="<sip:phone@127.0.0.1>;tag=zz"),
    "unregister": register(extra=("Expires: 0",)),
    "too-brief": register("multi", extra=("Expires: 30",)),
    "unknown-user": register("nobody"),
    "auth-endpoint": register("secure"),
    "star": register(contact="*", extra=("Expires: 0",)),
    "two-contacts": register(contact="<sip:phone@192.0.2.10:1>, <sip:phone@192.0.2.10:2>"),
    "contact-params": register(contact='<sip:phone@192.0.2.10:1>;+sip.instance="<urn:x>"'),
    "body": register(body="hello"),
    "require": register(extra=("Require: gruu",)),
    "date": register(extra=("Date: yesterday",)),
    "bad-call-id": register(call_id="a b"),
    "legacy-branch": register(via="SIP/2.0/UDP 192.0.2.10:40000;branch=1234"),
    "max-forwards": register(first=("Max-Forwards: 300",)),
    "big-expires": register(extra=("Expires: 99999999999",)),
    "lower-case": register(names={"from": "fRoM"}),
    "via-list": register(via="SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP b.example"),
    "tel-from": register(from_="<tel:+15551234>;tag=1"),
    "bad-uri": register(to="<sip:phone@>"),
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_requests_take_the_ordinary_path(nodes: tuple[Node, Node], name: str) -> None:
    both(nodes, DECLINED[name])
    assert nodes[0].fast.answered == 0


@pytest.mark.parametrize("line", ["Expires", "Allow", "Supported", "Via", "v"])
def test_a_line_without_colon_is_left_to_the_parser(nodes: tuple[Node, Node], line: str) -> None:
    """A known header name alone on a line is no header: the parser answers 400 (§7.3)."""
    data = register(extra=(line,))
    assert nodes[0].fast.handle(data, SOURCE, NOW) is None
    with pytest.raises(ParseError, match="without ':'"):
        parse_message(data)
    assert nodes[0].registrar.location.all(NOW) == []


def test_non_ascii_and_other_methods_are_declined(nodes: tuple[Node, Node]) -> None:
    fast = nodes[0].fast
    assert fast.handle(register(extra=("User-Agent: caf\u00e9",)).replace(b"\xc3", b"\xe9"),
                       SOURCE, NOW) is None  # fmt: skip
    assert fast.handle(b"OPTIONS sip:x SIP/2.0\r\n\r\n", SOURCE, NOW) is None
    tcp = Address("tcp", "192.0.2.10", 40000)
    assert fast.handle(register(), tcp, NOW) is None


def test_out_of_order_cseq_changes_nothing(nodes: tuple[Node, Node]) -> None:
    both(nodes, register(cseq=5))
    got, _ = both(nodes, register(cseq=4))
    assert got is not None and got.startswith(b"SIP/2.0 500")
    assert nodes[0].fast.answered == 1


def test_retransmission_gets_the_same_response_again() -> None:
    node = make_node()
    data = register()
    first = node.fast.handle(data, SOURCE, NOW)
    assert first is not None and first.startswith(b"SIP/2.0 200")
    again = node.fast.handle(data, SOURCE, NOW + 1)
    assert again == b""  # queued in the transaction layer, not registered twice
    [(message, dest)] = node.layer.messages_to_send()
    assert message.to_bytes() == first and dest == SOURCE
    assert node.fast.answered == 1
    node.layer.handle_timer(NOW + 33)  # Timer J (64*T1) over: a new request, whose
    assert node.fast.handle(data, SOURCE, NOW + 34) is None  # CSeq is out of order now


def test_live_server_transaction_keeps_its_requests() -> None:
    node = make_node()
    data = register()
    request = parse_message(data)
    assert isinstance(request, Request)
    node.layer.receive_request(request, SOURCE, NOW)  # the ordinary path holds it (Trying)
    assert node.fast.handle(data, SOURCE, NOW) is None


@pytest.mark.parametrize(
    "uri",
    [
        "sip:phone@192.0.2.10:40000",
        "sip:phone@192.0.2.10:40000;transport=UDP",
        "sip:phone@192.0.2.10;transport=udp",
        "sips:phone@example.com:5061;ob",
        "sip:192.0.2.10",
        "sip:phone@192.0.2.10:65535;x=",
        "sip:phone@192.0.2.10:65536",
        "sip:phone@192.0.2.10:0",
        "sip:phone@192.0.2.10:05060",
        "sip:phone@192.0.2.10;Transport=udp",
        "sip:phone@192.0.2.10;a=1;a=2",
        "sip:phone@192.0.2.10;a=1=2",
        "sip:phone@[2001:db8::1]:5060",
        "sip:ph%20one@192.0.2.10",
    ],
)
def test_contact_uri_stored_as_the_ordinary_path_stores_it(uri: str) -> None:
    """A new contact's URI is kept as is only when parsing would write it back unchanged."""
    from callway.pbx.registrar_fast import _reserialised

    node = make_node()
    found = node.fast._contact(f"<{uri}>")
    assert (found[0] if found else None) == _reserialised(uri)


def test_a_source_an_identify_section_claims_takes_the_ordinary_path() -> None:
    """type=identify may pick another endpoint for this address: the ordinary path decides."""
    extra = (
        "\n[trunk]\ntype=endpoint\nidentify_by=ip\n"
        "\n[trunk-ip]\ntype=identify\nendpoint=trunk\nmatch=192.0.2.0/24\n"
    )
    config = parse_pjsip(CONF + extra, "pjsip.conf")
    registrar = Registrar(config, Location(), Authenticator(config))
    fast = FastRegistrar(registrar, TransactionLayer(), SERVER)
    assert fast.handle(register(), SOURCE, NOW) is None
    elsewhere = Address("udp", "198.51.100.1", 40000, ("127.0.0.1", 5060))
    data = register(via="SIP/2.0/UDP 198.51.100.1:40000;branch=z9hG4bK-elsewhere")
    assert fast.handle(data, elsewhere, NOW) is not None
