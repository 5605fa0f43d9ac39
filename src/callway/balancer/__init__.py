"""The SIP load balancer: Kamailio's dispatcher module, sans-I/O.

* :mod:`~callway.balancer.model` — destinations, sets, state flags, algorithm ids;
* :mod:`~callway.balancer.algorithms` — ``select_destinations`` and its state;
* :mod:`~callway.balancer.probing` — keepalive probing and destination states;
* :mod:`~callway.balancer.proxy` — forwarding decisions.

``dispatcher.list`` itself is read by :mod:`callway.config.dispatcher`.
"""

from callway.balancer.algorithms import (
    SUPPORTED_ALGORITHMS,
    CallLoad,
    FlagsLookup,
    RequestFacts,
    SelectorState,
    select_destinations,
)
from callway.balancer.model import (
    STATE_BITS,
    Algorithm,
    Destination,
    DestState,
    DispatcherSet,
    ProbeSettings,
    ProbingMode,
    ReplyCodes,
    UnsupportedAlgorithmError,
)
from callway.balancer.probing import (
    DestinationDown,
    DestinationStatus,
    DestinationUp,
    Prober,
    ProberEvent,
    next_state,
)

__all__ = [
    "STATE_BITS",
    "SUPPORTED_ALGORITHMS",
    "Algorithm",
    "CallLoad",
    "DestState",
    "Destination",
    "DestinationDown",
    "DestinationStatus",
    "DestinationUp",
    "DispatcherSet",
    "FlagsLookup",
    "ProbeSettings",
    "Prober",
    "ProberEvent",
    "ProbingMode",
    "ReplyCodes",
    "RequestFacts",
    "SelectorState",
    "UnsupportedAlgorithmError",
    "next_state",
    "select_destinations",
]
