"""SIP transactions, sans-I/O (RFC 3261 §17, RFC 6026).

``TransactionLayer`` is the façade the TU and the transport shell use; the
state tables live in ``client.py`` (Figures 5 and 6) and ``server.py``
(Figures 7 and 8), run by ``machine.py``.
"""

from callway.sip.transaction.builders import MAGIC_COOKIE, build_ack, build_cancel, new_branch
from callway.sip.transaction.events import (
    AckReceived,
    ClientTransactionKey,
    RequestReceived,
    ResponseReceived,
    ServerTransactionKey,
    StrayResponse,
    TransactionEvent,
    TransactionKey,
    TransactionTimeout,
    TransportError,
)
from callway.sip.transaction.layer import TransactionLayer
from callway.sip.transaction.machine import State, TransactionError
from callway.sip.transaction.timers import Timer, TransactionConfig

__all__ = [
    "MAGIC_COOKIE",
    "AckReceived",
    "ClientTransactionKey",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransactionKey",
    "State",
    "StrayResponse",
    "Timer",
    "TransactionConfig",
    "TransactionError",
    "TransactionEvent",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTimeout",
    "TransportError",
    "build_ack",
    "build_cancel",
    "new_branch",
]
