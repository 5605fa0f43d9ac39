"""Transaction keys and the events the transaction layer hands to the TU.

Events are pulled with :meth:`TransactionLayer.next_event` (the aioquic
pattern).  Each one is a frozen dataclass; the TU matches on its type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from callway.core.address import Address
from callway.sip.message import Request, Response


class ClientTransactionKey(NamedTuple):
    """A client transaction: top Via branch + CSeq method (RFC 3261 §17.1.3).

    Keys are named tuples: built and hashed in C, they are looked up several
    times per message (transaction table, timer heap).
    """

    branch: str
    method: str


class ServerTransactionKey(NamedTuple):
    """A server transaction: branch, sent-by and method (RFC 3261 §17.2.3).

    ``method`` is the method of the request that created the transaction, so
    an ACK looks up the INVITE's key and a CANCEL has a key of its own.  For a
    request without the ``z9hG4bK`` cookie (RFC 2543 peers) ``branch`` holds
    the §17.2.3 fallback identity instead (Request-URI, tags, Call-ID, CSeq
    number and the whole top Via), prefixed by ``rfc2543|``.
    """

    branch: str
    sent_by: tuple[str, int]
    method: str

    @property
    def legacy(self) -> bool:
        """True if the key comes from the RFC 2543 matching rules."""
        return self.branch.startswith(LEGACY_PREFIX)


LEGACY_PREFIX = "rfc2543|"

TransactionKey = ClientTransactionKey | ServerTransactionKey


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """Base class of what the layer reports to the TU."""


@dataclass(frozen=True, slots=True)
class RequestReceived(TransactionEvent):
    """A new request created a server transaction (RFC 3261 §17.2.1, §17.2.2).

    Answer it with :meth:`TransactionLayer.send_response` and ``key``.
    Retransmissions of the request are absorbed and never reported.
    """

    key: ServerTransactionKey
    request: Request
    source: Address


@dataclass(frozen=True, slots=True)
class AckReceived(TransactionEvent):
    """An ACK for a 2xx (RFC 3261 §13.3.1.4, RFC 6026): it belongs to the dialog.

    Reported when an ACK matches no server transaction (the usual case: the
    ACK for a 2xx has a branch of its own, §17.1.1.3) or matches an INVITE
    server transaction in the Accepted state.
    """

    request: Request
    source: Address


@dataclass(frozen=True, slots=True)
class ResponseReceived(TransactionEvent):
    """A response for a client transaction (RFC 3261 §17.1.1.2, §17.1.2.2).

    Every provisional response and the first final response are reported;
    for INVITE every 2xx is reported, including retransmissions and 2xx from
    other forks (RFC 6026 Accepted state).  Retransmitted non-2xx finals are
    absorbed (and ACKed again for INVITE).
    """

    key: ClientTransactionKey
    response: Response


@dataclass(frozen=True, slots=True)
class StrayResponse(TransactionEvent):
    """A response that matches no client transaction (RFC 3261 §17.1.3, §18.1.2).

    A UA drops it; a stateless proxy may forward it (§16.7).
    """

    response: Response
    source: Address


@dataclass(frozen=True, slots=True)
class TransactionTimeout(TransactionEvent):
    """Timer B, F or H fired (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1).

    For a client transaction the TU treats it as a 408 (§8.1.3.1); for an
    INVITE server transaction it means the ACK never came.
    """

    key: TransactionKey


@dataclass(frozen=True, slots=True)
class TransportError(TransactionEvent):
    """The transport failed to send for this transaction (RFC 3261 §17.1.4, §17.2.4)."""

    key: TransactionKey
