"""SipStack's fast path hook: tried before parsing, the ordinary path when it declines or fails."""

from __future__ import annotations

from callway.core.address import Address
from callway.sip.transaction import RequestReceived, TransactionEvent
from callway.transport.stack import SipStack

SOURCE = Address("udp", "192.0.2.10", 40000, ("127.0.0.1", 5060))
REGISTER = (
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[TransactionEvent] = []

    def handle_event(self, event: TransactionEvent, now: float) -> None:
        self.events.append(event)


class Fast:
    def __init__(self, reply: bytes | None = None, fail: bool = False) -> None:
        self.reply, self.fail, self.seen = reply, fail, 0

    def handle(self, data: bytes, source: Address, now: float) -> bytes | None:
        self.seen += 1
        if self.fail:
            raise RuntimeError("bug")
        return self.reply


def make_stack(fast: Fast) -> tuple[SipStack, Recorder, list[tuple[bytes, Address]]]:
    stack = SipStack(clock=lambda: 1000.0)
    tu = Recorder()
    stack.tu = tu
    stack.fast_path = fast
    sent: list[tuple[bytes, Address]] = []
    stack.send_bytes = lambda data, dest: sent.append((data, dest))  # type: ignore[method-assign]
    return stack, tu, sent


def test_fast_answer_is_sent_and_nothing_else_happens() -> None:
    stack, tu, sent = make_stack(Fast(b"SIP/2.0 200 OK\r\n\r\n"))
    stack.on_data(REGISTER, SOURCE)
    assert sent == [(b"SIP/2.0 200 OK\r\n\r\n", SOURCE)]
    assert tu.events == []


def test_declined_message_takes_the_ordinary_path() -> None:
    fast = Fast(None)
    stack, tu, sent = make_stack(fast)
    stack.on_data(REGISTER, SOURCE)
    assert fast.seen == 1 and sent == []
    assert [type(e) for e in tu.events] == [RequestReceived]


def test_a_failing_fast_path_costs_nothing_but_a_log_line() -> None:
    stack, tu, _sent = make_stack(Fast(fail=True))
    stack.on_data(REGISTER, SOURCE)
    assert [type(e) for e in tu.events] == [RequestReceived]


def test_transaction_cap_bypasses_the_fast_path() -> None:
    fast = Fast(None)
    stack, _tu, sent = make_stack(fast)
    stack.max_transactions = 1
    stack.on_data(REGISTER, SOURCE)  # declined: a live transaction the TU has not answered
    stack.on_data(REGISTER.replace(b"-1", b"-2"), SOURCE)
    assert fast.seen == 1  # at the cap the ordinary path answers 503 (RFC 3261 §21.5.4)
    assert len(sent) == 1 and sent[0][0].startswith(b"SIP/2.0 503")
