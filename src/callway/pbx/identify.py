"""Endpoints identified by source address or header (Asterisk's res_pjsip_endpoint_identifier_ip).

A ``type=identify`` section names an endpoint and says which requests are
its: ``match=`` lists addresses, networks and host names (resolved by the
shell, this module does no DNS), ``match_header=`` a ``Name: value`` the
request must carry.  A carrier's trunk, which never authenticates, is
configured this way::

    [carrier-ip]
    type=identify
    endpoint=carrier
    match=203.0.113.0/24

As in Asterisk, a header match is looked for first, then an address match;
when several networks contain the address, the most specific one wins
(the longest prefix).  An endpoint is only identified this way when its
``identify_by`` includes ``ip`` (or ``header`` for a header match).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from callway.pbx.model import Endpoint, Network, PjsipConfig

#: A request's header values by (case-insensitive) name, as Request.get_all.
HeaderValues = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class _Rule:
    network: Network
    endpoint: Endpoint


class SourceIdentifier:
    """The identify sections of one configuration, ready for per-request lookups."""

    def __init__(
        self, config: PjsipConfig, resolved: Mapping[str, tuple[Network, ...]] | None = None
    ) -> None:
        rules: list[_Rule] = []
        headers: list[tuple[str, str, Endpoint]] = []
        for identify in config.identifies.values():
            endpoint = config.endpoints.get(identify.endpoint)
            if endpoint is None:
                continue  # the config loader refuses this; a hand-built config may not
            networks = list(identify.match)
            for host in identify.match_hosts:
                networks.extend((resolved or {}).get(host, ()))
            if "ip" in endpoint.identify_by:
                rules.extend(_Rule(network, endpoint) for network in networks)
            if identify.match_header and "header" in _ways(endpoint):
                name, _, value = identify.match_header.partition(":")
                headers.append((name.strip(), value.strip(), endpoint))
        # Most specific network first: the first rule containing an address wins.
        rules.sort(key=lambda rule: rule.network.prefixlen, reverse=True)
        self._rules = tuple(rules)
        self._headers = tuple(headers)

    def __bool__(self) -> bool:
        """Whether any request at all could be identified here."""
        return bool(self._rules or self._headers)

    @property
    def by_header(self) -> bool:
        """Whether some ``match_header=`` applies (a request's headers are needed)."""
        return bool(self._headers)

    def identify(self, host: str, header_values: HeaderValues) -> Endpoint | None:
        """The endpoint for a request from ``host`` with these headers, or None."""
        for name, value, endpoint in self._headers:
            if value in (v.strip() for v in header_values(name)):
                return endpoint
        return self.by_address(host)

    def by_address(self, host: str) -> Endpoint | None:
        """The endpoint whose most specific ``match=`` network holds ``host``, or None."""
        if not self._rules:
            return None
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None
        for rule in self._rules:
            if address.version == rule.network.version and address in rule.network:
                return rule.endpoint
        return None


def _ways(endpoint: Endpoint) -> tuple[str, ...]:
    """``identify_by``; Asterisk identifies by header when ``ip`` is listed too."""
    ways = endpoint.identify_by
    return (*ways, "header") if "ip" in ways else ways
