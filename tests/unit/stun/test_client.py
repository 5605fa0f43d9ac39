"""The sans-I/O Binding client transaction (RFC 8489 §6.2.1, RFC 5389 §7.2.1)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from callway.stun.client import BindingTransaction, StunTimeoutError
from callway.stun.message import (
    Attribute,
    AttrType,
    ErrorCode,
    MessageClass,
    Method,
    StunError,
    StunMessage,
    TransportAddress,
    decode,
    encode,
)
from callway.stun.server import StunResponder
from callway.transport.stun import StunServer
from callway.transport.stun_client import stun_mapped_address


def run_until_done(tx: BindingTransaction, start: float) -> list[float]:
    """Step the clock from timer to timer; the times at which requests left."""
    sent_at = [start] * len(tx.datagrams_to_send())
    while (deadline := tx.get_timer()) is not None:
        tx.handle_timer(deadline)
        sent_at += [deadline] * len(tx.datagrams_to_send())
    return sent_at


def test_retransmission_schedule_of_rfc5389_example() -> None:
    # §7.2.1: "requests would be sent at times 0 ms, 500 ms, 1500 ms, 3500 ms,
    # 7500 ms, 15500 ms, and 31500 ms ... the client considers the transaction
    # to have failed ... at 39500 ms".
    tx = BindingTransaction(100.0)
    sent = run_until_done(tx, 100.0)
    assert [round(t - 100.0, 3) for t in sent] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert isinstance(tx.error, StunTimeoutError)
    assert tx.done and tx.mapped is None and tx.sent == 7


def test_timeout_exact_moment() -> None:
    tx = BindingTransaction(0.0, rto=0.1, rc=2, rm=4)
    assert len(tx.datagrams_to_send()) == 1
    tx.handle_timer(0.05)  # early wake-up: nothing happens
    assert tx.datagrams_to_send() == []
    tx.handle_timer(0.1)
    assert len(tx.datagrams_to_send()) == 1
    assert tx.get_timer() == pytest.approx(0.5)
    tx.handle_timer(0.49)
    assert not tx.done
    tx.handle_timer(0.5)
    assert isinstance(tx.error, StunTimeoutError)
    assert tx.get_timer() is None


def test_request_is_a_binding_request_with_fingerprint() -> None:
    tx = BindingTransaction(0.0, software="callway-test")
    [data] = tx.datagrams_to_send()
    msg = decode(data)
    assert (msg.method, msg.cls) == (Method.BINDING, MessageClass.REQUEST)
    assert msg.transaction_id == tx.transaction_id
    assert msg.text(AttrType.SOFTWARE) == "callway-test"
    assert msg.get(AttrType.FINGERPRINT) is not None


def test_success_from_our_responder() -> None:
    tx = BindingTransaction(0.0)
    [request] = tx.datagrams_to_send()
    responder = StunResponder(("198.51.100.1", 3478), ("198.51.100.2", 3479))
    [reply] = responder.handle(request, ("203.0.113.7", 40123), ("198.51.100.1", 3478))
    assert tx.receive(reply.data, 0.1)
    assert tx.mapped == TransportAddress("203.0.113.7", 40123)
    assert tx.other_address == TransportAddress("198.51.100.2", 3479)
    assert tx.done and tx.get_timer() is None
    assert tx.receive(reply.data, 0.2) is False  # a retransmitted answer is not ours any more


def test_rfc3489_style_mapped_address_is_accepted() -> None:
    tx = BindingTransaction(0.0)
    answer = encode(
        StunMessage(Method.BINDING, MessageClass.SUCCESS, tx.transaction_id,
                    (Attribute(AttrType.MAPPED_ADDRESS, TransportAddress("192.0.2.1", 9)),))
    )  # fmt: skip
    assert tx.receive(answer, 0.0)
    assert tx.mapped == TransportAddress("192.0.2.1", 9)


def test_other_transactions_and_garbage_are_ignored() -> None:
    tx = BindingTransaction(0.0)
    other = encode(StunMessage(Method.BINDING, MessageClass.SUCCESS, b"x" * 12, (
        Attribute(AttrType.XOR_MAPPED_ADDRESS, TransportAddress("192.0.2.1", 9)),)))  # fmt: skip
    assert tx.receive(other, 0.0) is False
    assert tx.receive(b"\x80\x00 an RTP packet", 0.0) is False
    assert tx.receive(b"SIP/2.0 200 OK\r\n\r\n", 0.0) is False
    broken = bytearray(encode(StunMessage(Method.BINDING, MessageClass.SUCCESS,
                                          tx.transaction_id, ())))  # fmt: skip
    broken[-1] ^= 0xFF  # bad FINGERPRINT
    assert tx.receive(bytes(broken), 0.0) is False
    assert not tx.done


def test_error_response_and_success_without_address() -> None:
    tx = BindingTransaction(0.0)
    error = encode(
        StunMessage(
            Method.BINDING,
            MessageClass.ERROR,
            tx.transaction_id,
            (Attribute(AttrType.ERROR_CODE, ErrorCode(400, "Bad Request")),),
        )
    )
    assert tx.receive(error, 0.0)
    assert isinstance(tx.error, StunError) and "400" in str(tx.error)
    tx2 = BindingTransaction(0.0)
    empty = encode(StunMessage(Method.BINDING, MessageClass.SUCCESS, tx2.transaction_id, ()))
    assert tx2.receive(empty, 0.0)
    assert tx2.error is not None and tx2.mapped is None


def test_asyncio_helper_against_callway_stun_server() -> None:
    async def scenario() -> tuple[TransportAddress, tuple[str, int]]:
        async with StunServer(("127.0.0.1", 0)) as server:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            try:
                mapped = await stun_mapped_address(server.addresses[0], sock)
                return mapped, sock.getsockname()
            finally:
                sock.close()

    mapped, local = asyncio.run(scenario())
    assert (mapped.host, mapped.port) == local


def test_asyncio_helper_times_out_on_silence() -> None:
    async def scenario() -> None:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        try:
            await stun_mapped_address(silent.getsockname(), sock, rto=0.01, rc=3, rm=2)
        finally:
            sock.close()
            silent.close()

    with pytest.raises(StunTimeoutError):
        asyncio.run(scenario())
