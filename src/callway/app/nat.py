"""A PBX that itself sits behind NAT: which address to advertise to whom.

Asterisk's transport options, same semantics:

* ``external_signaling_address`` (and ``external_signaling_port``): the host
  (and port) put in our Via and Contact for a peer outside ``local_net``;
* ``external_media_address``: the address in our SDP ``c=``/``o=`` lines for
  such a peer (RFC 4566 §5.2, §5.7), so its RTP reaches the NAT's forwarded
  ports instead of our private address;
* ``local_net``: the networks reached without NAT; a peer inside them gets
  our real local address.  Asterisk also counts loopback as local.

The decision is pure (addresses in, addresses out); legs and call media ask
:class:`NatPolicy` when they build Via, Contact and SDP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from callway.pbx.model import PjsipConfig, Transport

HostPort = tuple[str, int]

_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True, slots=True)
class NatPolicy:
    """External addresses of the transports that declare them."""

    transports: tuple[Transport, ...] = ()

    @classmethod
    def from_config(cls, config: PjsipConfig) -> NatPolicy:
        """Every transport with an external address, in config order."""
        return cls(
            tuple(
                t
                for t in config.transports.values()
                if t.external_signaling_address or t.external_media_address
            )
        )

    def _transport(self, local: HostPort, protocol: str) -> Transport | None:
        """The NAT-configured transport ``local`` belongs to (bound there, or a wildcard)."""
        host, port = local
        wildcard: Transport | None = None
        for transport in self.transports:
            if transport.protocol != protocol:
                continue
            if transport.bind_port not in (port, 0):
                continue
            if transport.bind_host == host:
                return transport
            if transport.bind_host in ("0.0.0.0", "::") and wildcard is None:
                wildcard = transport
        return wildcard

    def signaling(self, local: HostPort, protocol: str, peer_host: str) -> HostPort:
        """host:port for our Via and Contact towards ``peer_host`` (RFC 3261 §18.2.1, §8.1.1.8)."""
        transport = self._transport(local, protocol) if self.transports else None
        if transport is None or not transport.external_signaling_address:
            return local
        if is_local(peer_host, transport.local_net):
            return local
        return (
            transport.external_signaling_address,
            transport.external_signaling_port or local[1],
        )

    def media_host(self, local: HostPort, protocol: str, local_media: str,
                   peer_host: str) -> str:  # fmt: skip
        """The address for our SDP towards ``peer_host`` (``local_media`` when no NAT applies)."""
        transport = self._transport(local, protocol) if self.transports else None
        if transport is None or not transport.external_media_address:
            return local_media
        if is_local(peer_host, transport.local_net):
            return local_media
        return transport.external_media_address


def is_local(host: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """True when ``host`` is in ``local_net`` or loopback; a host name counts as outside."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(address in net for net in (*networks, *_LOOPBACK) if net.version == address.version)
