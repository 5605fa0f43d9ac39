"""Transport addresses as the sans-I/O core sees them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Address:
    """Where a message came from or goes to.

    ``transport`` is ``udp``, ``tcp`` or ``tls``.  ``local`` is the local
    (host, port) the message arrived on, so a reply leaves from the same
    address (RFC 3261 §18.2.2); ``conn`` names the stream connection it came
    on, so a reply or a later request reuses it (RFC 3261 §18.2.2, RFC 5626).
    Neither takes part in equality.
    """

    transport: str
    host: str
    port: int
    local: tuple[str, int] | None = field(default=None, compare=False)
    conn: int | None = field(default=None, compare=False)

    @property
    def reliable(self) -> bool:
        """True for stream transports, where SIP does not retransmit (RFC 3261 §17)."""
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
