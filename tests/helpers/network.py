"""An in-memory network between sans-I/O SIP endpoints.

Each node is attached at an :class:`Address`.  :meth:`InMemoryNetwork.flush`
drains every node's ``messages_to_send()``, serialises each message to bytes,
parses it back with :func:`parse_message` (so what arrives is what a socket
would deliver) and hands it to the node at the destination, until nothing is
left in flight.  Switches drop or duplicate the next N messages (optionally
only those matching a predicate) to simulate UDP loss and duplication.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from callway.core.address import Address
from callway.sip.message import Request, Response, parse_message

Message = Request | Response
Predicate = Callable[[Message], bool]


class Endpoint(Protocol):
    """What the network needs from a node (a TransactionLayer fits)."""

    def messages_to_send(self) -> list[tuple[Message, Address]]: ...

    def receive_request(self, request: Request, source: Address, now: float) -> None: ...

    def receive_response(self, response: Response, source: Address, now: float) -> None: ...


@dataclass
class Delivery:
    """One message put on the wire: who sent it, where to, and its fate."""

    source: Address
    dest: Address
    message: Message
    dropped: bool = False
    copies: int = 1


@dataclass
class _Switch:
    remaining: int
    match: Predicate | None

    def applies(self, message: Message) -> bool:
        if self.remaining <= 0 or (self.match is not None and not self.match(message)):
            return False
        self.remaining -= 1
        return True


@dataclass
class InMemoryNetwork:
    """Nodes by address; a log of every message put on the wire."""

    nodes: dict[Address, Endpoint] = field(default_factory=dict)
    log: list[Delivery] = field(default_factory=list)
    _drops: list[_Switch] = field(default_factory=list)
    _dups: list[_Switch] = field(default_factory=list)

    def attach(self, address: Address, node: Endpoint) -> None:
        """Put ``node`` on the network at ``address``."""
        self.nodes[address] = node

    def drop_next(self, count: int = 1, match: Predicate | None = None) -> None:
        """Lose the next ``count`` messages (that satisfy ``match``)."""
        self._drops.append(_Switch(count, match))

    def duplicate_next(self, count: int = 1, match: Predicate | None = None) -> None:
        """Deliver the next ``count`` messages (that satisfy ``match``) twice."""
        self._dups.append(_Switch(count, match))

    def flush(self, now: float, max_rounds: int = 100) -> int:
        """Deliver until no node has anything to send; return how many were sent."""
        sent = 0
        for _ in range(max_rounds):
            batch = [
                (address, message, dest)
                for address, node in list(self.nodes.items())
                for message, dest in node.messages_to_send()
            ]
            if not batch:
                return sent
            for source, message, dest in batch:
                self._transmit(source, message, dest, now)
            sent += len(batch)
        raise AssertionError("messages still in flight after max_rounds")

    def sent(self, kind: str | int | None = None) -> list[Message]:
        """Messages put on the wire: all, by method (``"INVITE"``) or by status (``180``)."""
        return [d.message for d in self.log if _is_kind(d.message, kind)]

    def delivered(self, kind: str | int | None = None) -> list[Message]:
        """Messages that reached their destination (not dropped)."""
        return [d.message for d in self.log if not d.dropped and _is_kind(d.message, kind)]

    def _transmit(self, source: Address, message: Message, dest: Address, now: float) -> None:
        wire = message.to_bytes()
        delivery = Delivery(source, dest, parse_message(wire))
        self.log.append(delivery)
        if any(switch.applies(message) for switch in self._drops):
            delivery.dropped = True
            return
        if any(switch.applies(message) for switch in self._dups):
            delivery.copies = 2
        node = self.nodes.get(dest)
        if node is None:
            delivery.dropped = True
            return
        arrived_from = Address(
            source.transport, source.host, source.port, local=(dest.host, dest.port)
        )
        for _ in range(delivery.copies):
            received = parse_message(wire)
            if isinstance(received, Request):
                node.receive_request(received, arrived_from, now)
            else:
                node.receive_response(received, arrived_from, now)


def _is_kind(message: Message, kind: str | int | None) -> bool:
    if kind is None:
        return True
    if isinstance(kind, int):
        return isinstance(message, Response) and message.status == kind
    return isinstance(message, Request) and message.method == kind
