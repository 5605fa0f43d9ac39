"""STUN Binding client transaction (RFC 8489 §6.2.1, RFC 5389 §7.2.1), sans-I/O.

Over UDP a client retransmits its request: the first retransmission after
RTO (500 ms recommended), each later one after twice the previous interval,
until Rc requests (7) were sent; after the last one it waits Rm times RTO
(16 x 500 ms = 8 s) before it gives up.  With the defaults the requests leave
at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s and the transaction fails at
39.5 s (the worked example of RFC 5389 §7.2.1).

The object never touches a socket or the clock: the shell sends
:meth:`BindingTransaction.datagrams_to_send`, feeds every datagram it
receives to :meth:`BindingTransaction.receive` and wakes it at
:meth:`BindingTransaction.get_timer` with :meth:`BindingTransaction.handle_timer`.
The outcome is :attr:`BindingTransaction.mapped` (the XOR-MAPPED-ADDRESS, or
MAPPED-ADDRESS from an RFC 3489 server, §14.1-§14.2) or
:attr:`BindingTransaction.error`.  ``transport.stun_client`` has the asyncio
helper.
"""

from __future__ import annotations

from callway.stun.message import (
    Attribute,
    AttrType,
    MessageClass,
    Method,
    StunError,
    StunMessage,
    TransportAddress,
    decode,
    encode,
    is_stun,
    new_transaction_id,
)

RTO = 0.5  # RFC 8489 §6.2.1: initial retransmission timeout
RC = 7  # requests sent in all
RM = 16  # wait Rm * RTO after the last request


class StunTimeoutError(StunError):
    """No response after Rc requests and the final Rm * RTO wait (RFC 8489 §6.2.1)."""


class BindingTransaction:
    """One Binding request over UDP and its retransmissions.

    ``done`` turns true once a response matched (success or error) or the
    transaction timed out; the result is then in ``mapped``/``other_address``
    or ``error``.
    """

    def __init__(
        self,
        now: float,
        *,
        rto: float = RTO,
        rc: int = RC,
        rm: int = RM,
        transaction_id: bytes | None = None,
        software: str | None = None,
    ) -> None:
        self.transaction_id = transaction_id or new_transaction_id()
        attributes = () if software is None else (Attribute(AttrType.SOFTWARE, software),)
        self.request = encode(
            StunMessage(Method.BINDING, MessageClass.REQUEST, self.transaction_id, attributes)
        )
        self.rto = rto
        self.rc = rc
        self.rm = rm
        self.sent = 0
        self.mapped: TransportAddress | None = None
        self.other_address: TransportAddress | None = None
        self.error: StunError | None = None
        self._interval = rto
        self._deadline: float | None = now
        self._outgoing: list[bytes] = []
        self.handle_timer(now)

    @property
    def done(self) -> bool:
        """A response arrived or the transaction gave up."""
        return self.mapped is not None or self.error is not None

    def datagrams_to_send(self) -> list[bytes]:
        """The requests (first one and retransmissions) due since the last call."""
        out, self._outgoing = self._outgoing, []
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next (None once done)."""
        return None if self.done else self._deadline

    def handle_timer(self, now: float) -> None:
        """Retransmit, or give up after the last request's Rm * RTO (§6.2.1)."""
        deadline = self._deadline
        if self.done or deadline is None or now < deadline:
            return
        if self.sent >= self.rc:
            self.error = StunTimeoutError(f"no STUN response after {self.sent} requests")
            self._deadline = None
            return
        self._outgoing.append(self.request)
        self.sent += 1
        if self.sent < self.rc:
            self._deadline = deadline + self._interval
            self._interval *= 2
        else:
            self._deadline = deadline + self.rm * self.rto

    def receive(self, data: bytes, now: float) -> bool:
        """Feed a received datagram; True if it was this transaction's response.

        Anything else (other traffic on a shared socket, another transaction,
        a malformed message) is left to the caller and changes nothing.
        """
        del now  # kept for the usual sans-I/O signature
        if self.done or not is_stun(data):
            return False
        try:
            message = decode(data)
        except StunError:
            return False
        if message.transaction_id != self.transaction_id or message.method != Method.BINDING:
            return False
        if message.cls == MessageClass.SUCCESS:
            mapped = message.address(AttrType.XOR_MAPPED_ADDRESS) or message.address(
                AttrType.MAPPED_ADDRESS
            )
            if mapped is None:
                self.error = StunError("Binding success without a mapped address")
            else:
                self.mapped = mapped
                self.other_address = message.address(AttrType.OTHER_ADDRESS)
            return True
        if message.cls == MessageClass.ERROR:
            code = message.error_code
            reason = f"{code.code} {code.reason}" if code is not None else "no ERROR-CODE"
            self.error = StunError(f"Binding error response: {reason}")
            return True
        return False
