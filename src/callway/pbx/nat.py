"""``rewrite_contact``: register a NATed phone at the address its REGISTER came from.

Asterisk's ``rewrite_contact=yes`` (res_pjsip_nat) replaces the host and port
of the Contact URI with the packet's source address and port, and marks a
stream transport in the URI (``;transport=tcp``), so requests to the phone
(whose Contact names its private address, RFC 3261 §10.2.1) are routed to
the NAT's public mapping (RFC 3581 §4 does the same for responses).
"""

from __future__ import annotations

from callway.core.address import Address
from callway.sip.errors import ParseError
from callway.sip.uri import SipURI, parse_uri


def rewrite_contact_uri(uri: str, source: Address) -> str:
    """``uri`` with host:port replaced by ``source`` (unchanged if not a SIP URI)."""
    try:
        parsed = parse_uri(uri)
    except ParseError:
        return uri
    if not isinstance(parsed, SipURI):
        return uri
    rewritten = parsed.copy()
    rewritten.host = f"[{source.host}]" if ":" in source.host else source.host
    rewritten.port = source.port
    if source.transport != "udp":
        rewritten.params["transport"] = source.transport
    elif rewritten.transport not in (None, "udp"):
        rewritten.params.pop("transport", None)
    return str(rewritten)
