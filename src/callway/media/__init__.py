"""Media shell (asyncio): RTP port pool and relay sessions with latching."""

from callway.media.ports import PortPair, PortPool, PortsExhaustedError
from callway.media.relay import LegStats, RelayLeg, RelaySession

__all__ = ["LegStats", "PortPair", "PortPool", "PortsExhaustedError", "RelayLeg", "RelaySession"]
