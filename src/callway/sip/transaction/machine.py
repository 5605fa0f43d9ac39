"""The table-driven transaction machine shared by the four RFC 3261 figures.

Each transaction kind (``client.py``, ``server.py``) declares a table
``(State, Input) -> Transition(new_state, actions)`` transcribed from RFC 3261
Figures 5-8 as updated by RFC 6026, and the set of timers that may run in each
state.  :class:`Transaction` runs the table (the h2 ``H2StreamStateMachine``
style):

* an input from the TU (``SEND_*``) that is not in the table is a TU error and
  raises :class:`TransactionError` before anything changes;
* an input from the network or a timer that is not in the table is absorbed
  (stray or late messages, RFC 3261 §17.1.1.2, §17.2.1);
* entering a state cancels the timers that state does not run;
* a timer whose interval is zero (Timers D, I, J, K over reliable transports)
  fires at once, inside the same call.

What a transaction produces goes to the shared :class:`Outputs` that the
:class:`~callway.sip.transaction.layer.TransactionLayer` drains.
"""

from __future__ import annotations

import enum
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from callway.core.address import Address
from callway.core.timers import TimerHeap
from callway.sip.errors import SipError
from callway.sip.message import Request, Response, parse_message
from callway.sip.transaction.events import (
    TransactionEvent,
    TransactionKey,
    TransactionTimeout,
    TransportError,
)
from callway.sip.transaction.timers import Interval, Timer, TransactionConfig


class TransactionError(SipError):
    """The TU asked for something the transaction cannot do (a local error)."""


class State(enum.Enum):
    """Transaction states (RFC 3261 §17.1.1-§17.2.2; ACCEPTED from RFC 6026)."""

    __hash__ = object.__hash__  # members are singletons: hash by identity (hot tables)

    INIT = "Init"  # before the first input; the figures' entry arrow
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to a transaction: TU (SEND_*), network (RECV_*), timers."""

    __hash__ = object.__hash__  # members are singletons: hash by identity (hot tables)

    SEND_REQUEST = "request from TU"
    SEND_1XX = "1xx from TU"
    SEND_2XX = "2xx from TU"
    SEND_300_699 = "300-699 from TU"
    RECV_REQUEST = "request (first copy or retransmission)"
    RECV_ACK = "ACK"
    RECV_1XX = "1xx"
    RECV_2XX = "2xx"
    RECV_300_699 = "300-699"
    TIMER_A = "Timer A fires"
    TIMER_B = "Timer B fires"
    TIMER_D = "Timer D fires"
    TIMER_E = "Timer E fires"
    TIMER_F = "Timer F fires"
    TIMER_G = "Timer G fires"
    TIMER_H = "Timer H fires"
    TIMER_I = "Timer I fires"
    TIMER_J = "Timer J fires"
    TIMER_K = "Timer K fires"
    TIMER_L = "Timer L fires"
    TIMER_M = "Timer M fires"
    TRANSPORT_ERROR = "Transport Err."


TU_INPUTS = frozenset({Input.SEND_REQUEST, Input.SEND_1XX, Input.SEND_2XX, Input.SEND_300_699})
TIMER_INPUTS: Mapping[Timer, Input] = {timer: Input[f"TIMER_{timer.name}"] for timer in Timer}


class Action(enum.Enum):
    """The effects a transition performs, in table order."""

    __hash__ = object.__hash__  # members are singletons: hash by identity (hot tables)

    SEND_REQUEST = "send (or resend) the request"
    SEND_ACK = "send the ACK for a non-2xx final (§17.1.1.3)"
    PASS_RESPONSE = "response to TU"
    PASS_REQUEST = "request to TU"
    PASS_ACK = "ACK to TU (RFC 6026 Accepted)"
    SEND_TRYING = "send 100 if TU won't in 200 ms (§17.2.1)"
    SEND_RESPONSE = "send the TU's response and remember it"
    RESEND_RESPONSE = "resend the last response, if any"
    INFORM_TIMEOUT = "inform TU: timeout"
    INFORM_TRANSPORT_ERROR = "inform TU: transport error"
    START_A = "start Timer A = T1"
    DOUBLE_A = "reset Timer A = 2 * A"
    START_B = "start Timer B = 64*T1"
    START_D = "start Timer D"
    START_E = "start Timer E = T1"
    DOUBLE_E = "reset Timer E = min(2 * E, T2)"
    RESET_E_T2 = "reset Timer E = T2"
    START_F = "start Timer F = 64*T1"
    START_G = "start Timer G = T1"
    DOUBLE_G = "reset Timer G = min(2 * G, T2)"
    START_H = "start Timer H = 64*T1"
    START_I = "start Timer I = T4"
    START_J = "start Timer J = 64*T1"
    START_K = "start Timer K = T4"
    START_L = "start Timer L = 64*T1"
    START_M = "start Timer M = 64*T1"


TIMER_ACTIONS: Mapping[Action, tuple[Timer, Interval]] = {
    Action.START_A: (Timer.A, Interval.T1),
    Action.DOUBLE_A: (Timer.A, Interval.DOUBLE),
    Action.START_B: (Timer.B, Interval.TIMER_B),
    Action.START_D: (Timer.D, Interval.TIMER_D),
    Action.START_E: (Timer.E, Interval.T1),
    Action.DOUBLE_E: (Timer.E, Interval.DOUBLE_UP_TO_T2),
    Action.RESET_E_T2: (Timer.E, Interval.T2),
    Action.START_F: (Timer.F, Interval.T1_X64),
    Action.START_G: (Timer.G, Interval.T1),
    Action.DOUBLE_G: (Timer.G, Interval.DOUBLE_UP_TO_T2),
    Action.START_H: (Timer.H, Interval.T1_X64),
    Action.START_I: (Timer.I, Interval.T4_OR_ZERO),
    Action.START_J: (Timer.J, Interval.T1_X64_OR_ZERO),
    Action.START_K: (Timer.K, Interval.T4_OR_ZERO),
    Action.START_L: (Timer.L, Interval.T1_X64),
    Action.START_M: (Timer.M, Interval.T1_X64),
}


class Transition(NamedTuple):
    """One row of a transaction table."""

    state: State
    actions: tuple[Action, ...] = ()


Table = Mapping[tuple[State, Input], Transition]


def response_input(status: int, *, from_tu: bool) -> Input:
    """The input a response of ``status`` is, sent by the TU or received."""
    if not 100 <= status <= 699:
        raise TransactionError(f"status {status} is not a SIP status code (§7.2)")
    if status < 200:
        return Input.SEND_1XX if from_tu else Input.RECV_1XX
    if status < 300:
        return Input.SEND_2XX if from_tu else Input.RECV_2XX
    return Input.SEND_300_699 if from_tu else Input.RECV_300_699


@dataclass(slots=True)
class Outputs:
    """Where transactions put their effects; the layer drains it."""

    messages: list[tuple[Request | Response, Address]] = field(default_factory=list)
    events: deque[TransactionEvent] = field(default_factory=deque)
    timers: TimerHeap[tuple[TransactionKey, Timer]] = field(default_factory=TimerHeap)


# States that only wait for retransmissions (Timers D, I, J, K, L, M) or for the
# ACK of a final response (Timer G/H).  A transaction there keeps no parsed
# message: the request and the last response shrink to their wire bytes.
RESTING_STATES = frozenset({State.COMPLETED, State.CONFIRMED, State.ACCEPTED})


class Transaction:
    """Runs a transaction table for one request (RFC 3261 §17).

    ``peer`` is where requests go (client) or where responses go (server,
    §18.2.2: the address the request came from).

    Once the transaction rests in Completed, Confirmed or Accepted (where it
    waits up to 32 s only to absorb retransmissions), it drops its parsed
    request and response and keeps their bytes: thousands of such
    transactions must not keep thousands of parsed messages alive
    (DESIGN.md principle 5).  :attr:`request` and :attr:`last_response` still
    answer, re-parsing the bytes when nobody else holds the objects.
    """

    __slots__ = (
        "_armed",
        "_intervals",
        "_last_response",
        "_out",
        "_request",
        "_response_ref",
        "_wire_request",
        "_wire_response",
        "config",
        "key",
        "peer",
        "state",
    )

    TABLE: ClassVar[Table]
    STATE_TIMERS: ClassVar[Mapping[State, frozenset[Timer]]]

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        peer: Address,
        config: TransactionConfig,
        out: Outputs,
    ) -> None:
        self.key = key
        self._request: Request | None = request
        self._wire_request = b""
        self.peer = peer
        self.config = config
        self.state = State.INIT
        self._last_response: Response | None = None
        self._response_ref: weakref.ref[Response] | None = None
        self._wire_response: bytes | None = None
        self._out = out
        self._armed: set[Timer] = set()
        self._intervals: dict[Timer, float] = {}

    @property
    def request(self) -> Request:
        """The request of this transaction (re-parsed from its bytes once resting)."""
        request = self._request
        if request is None:
            parsed = parse_message(self._wire_request)
            assert isinstance(parsed, Request)
            return parsed
        return request

    @request.setter
    def request(self, request: Request) -> None:
        self._request = request

    @property
    def last_response(self) -> Response | None:
        """The last response sent (server) or received (client), or None."""
        return self._response_to_resend()

    @last_response.setter
    def last_response(self, response: Response | None) -> None:
        self._last_response = response
        self._response_ref = None
        self._wire_response = None

    def sent_response(self, message: object) -> bool:
        """Whether ``message`` is this transaction's last response (never parses)."""
        if message is self._last_response:
            return True
        ref = self._response_ref
        return ref is not None and ref() is message

    def _response_to_resend(self) -> Response | None:
        """The last response: the object while someone holds it, else parsed from its bytes.

        A retransmission is always the bytes first sent (§17.2.1, §17.2.2).
        """
        response = self._last_response
        if response is not None:
            return response
        wire = self._wire_response
        if wire is None:
            return None
        ref = self._response_ref
        live = ref() if ref is not None else None
        if live is not None and live.to_bytes() is wire:
            return live
        parsed = parse_message(wire)
        assert isinstance(parsed, Response)
        self._response_ref = weakref.ref(parsed)
        return parsed

    def _rest(self) -> None:
        """Keep only bytes in a resting state (see the class docstring)."""
        request = self._request
        if request is not None:
            self._wire_request = request.seal()
            self._request = None
        response = self._last_response
        if response is not None:
            self._wire_response = response.seal()
            self._response_ref = weakref.ref(response)
            self._last_response = None

    @property
    def reliable(self) -> bool:
        """Whether the transport is reliable (no retransmissions, §17.1.1.2)."""
        return self.peer.reliable

    def handle(
        self,
        stimulus: Input,
        now: float,
        message: Request | Response | None = None,
        source: Address | None = None,
    ) -> None:
        """Feed one input; ``message``/``source`` are what came with it."""
        table = self.TABLE
        row = table.get((self.state, stimulus))
        if row is None:
            if stimulus in TU_INPUTS:
                raise TransactionError(
                    f"{stimulus.value} not allowed in {self.state.value} ({type(self).__name__})"
                )
            if self.state in RESTING_STATES:  # absorbed: nothing changes
                self._rest()
            return
        # Zero-interval timers (reliable transports) fire at once, in order.
        pending: list[Input] | None = None
        while True:
            self._enter(row.state)
            for action in row.actions:
                zero_timer = self._act(action, now, message, source)
                if zero_timer is not None:
                    if pending is None:
                        pending = []
                    pending.append(zero_timer)
            message = source = None  # zero-interval timers carry no message
            next_row = None
            while pending and next_row is None:
                next_row = table.get((self.state, pending.pop(0)))
            if next_row is None:
                break
            row = next_row
        if self.state in RESTING_STATES:
            self._rest()

    def fire(self, timer: Timer, now: float) -> None:
        """A timer popped from the heap; ignored if it was cancelled meanwhile."""
        if timer in self._armed:
            self._armed.discard(timer)
            self.handle(TIMER_INPUTS[timer], now)

    def terminate(self) -> None:
        """Enter Terminated at the TU's request, outside the table; timers stop."""
        self._enter(State.TERMINATED)

    def _enter(self, state: State) -> None:
        self.state = state
        armed = self._armed
        if not armed:
            return
        keep = self.STATE_TIMERS.get(state, frozenset())
        for timer in armed - keep:
            self._out.timers.cancel((self.key, timer))
            armed.discard(timer)

    def _act(
        self,
        action: Action,
        now: float,
        message: Request | Response | None,
        source: Address | None,
    ) -> Input | None:
        timer_rule = TIMER_ACTIONS.get(action)
        if timer_rule is not None:
            return self._start(*timer_rule, now)
        if action is Action.INFORM_TIMEOUT:
            self._out.events.append(TransactionTimeout(self.key))
        elif action is Action.INFORM_TRANSPORT_ERROR:
            self._out.events.append(TransportError(self.key))
        else:
            self._perform(action, message, source)
        return None

    def _start(self, timer: Timer, rule: Interval, now: float) -> Input | None:
        interval = self.config.interval(
            rule, reliable=self.reliable, last=self._intervals.get(timer)
        )
        if interval is None:
            return None
        self._intervals[timer] = interval
        if interval <= 0:
            return TIMER_INPUTS[timer]
        self._armed.add(timer)
        self._out.timers.schedule(now + interval, (self.key, timer))
        return None

    def _perform(
        self, action: Action, message: Request | Response | None, source: Address | None
    ) -> None:
        """Message and event actions; each kind implements its own."""
        raise NotImplementedError(action)

    def _send(self, message: Request | Response) -> None:
        self._out.messages.append((message, self.peer))

    def _emit(self, event: TransactionEvent) -> None:
        self._out.events.append(event)
