"""asyncio shell of the STUN Binding client: "what is my public address?".

:func:`stun_mapped_address` drives a sans-I/O
:class:`~callway.stun.client.BindingTransaction` over a UDP socket the caller
owns (usually the very socket whose NAT mapping it wants to learn: the SIP or
RTP socket, RFC 8489 §3).  Datagrams that are not the answer are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from callway.stun.client import RC, RM, RTO, BindingTransaction
from callway.stun.message import TransportAddress

HostPort = tuple[str, int]


async def stun_mapped_address(
    server: HostPort,
    local_sock: socket.socket,
    *,
    rto: float = RTO,
    rc: int = RC,
    rm: int = RM,
) -> TransportAddress:
    """The server-reflexive address of ``local_sock`` as ``server`` sees it.

    ``local_sock`` must be a bound UDP socket; it is switched to non-blocking
    and is read only for the duration of the call.  Raises
    :class:`~callway.stun.client.StunTimeoutError` after RFC 8489 §6.2.1's
    retransmissions, or :class:`~callway.stun.message.StunError` on an error
    response.
    """
    loop = asyncio.get_running_loop()
    local_sock.setblocking(False)
    transaction = BindingTransaction(loop.time(), rto=rto, rc=rc, rm=rm)
    wake = asyncio.Event()

    def readable() -> None:
        while True:
            try:
                data = local_sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable: keep retransmitting (§6.2.1)
                continue
            if transaction.receive(data, loop.time()):
                wake.set()
                return

    loop.add_reader(local_sock.fileno(), readable)
    try:
        while True:
            for datagram in transaction.datagrams_to_send():
                with contextlib.suppress(OSError):  # unreachable now: retransmissions retry
                    local_sock.sendto(datagram, server)
            deadline = transaction.get_timer()
            if transaction.done or deadline is None:
                break
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, deadline - loop.time()))
            transaction.handle_timer(loop.time())
    finally:
        loop.remove_reader(local_sock.fileno())
    if transaction.mapped is not None:
        return transaction.mapped
    assert transaction.error is not None
    raise transaction.error
