"""Transaction timers and their values (RFC 3261 §17, Appendix A; RFC 6026).

RFC 3261 Appendix A, Table 4, as used here (``reliable`` = TCP/TLS):

======  ==========================  ==========================================
Timer   value                       meaning
======  ==========================  ==========================================
A       T1, doubling                INVITE retransmit (UDP only), §17.1.1.2
B       64*T1                       INVITE transaction timeout, §17.1.1.2
D       >= 32 s, 0 if reliable      wait for response retransmits, §17.1.1.2
E       T1, doubling up to T2       non-INVITE retransmit (UDP only), §17.1.2.2
F       64*T1                       non-INVITE transaction timeout, §17.1.2.2
G       T1, doubling up to T2       INVITE response retransmit (UDP only), §17.2.1
H       64*T1                       wait for ACK receipt, §17.2.1
I       T4, 0 if reliable           wait for ACK retransmits, §17.2.1
J       64*T1, 0 if reliable        wait for non-INVITE request retransmits, §17.2.2
K       T4, 0 if reliable           wait for response retransmits, §17.1.2.2
L       64*T1                       wait for INVITE retransmits in Accepted (RFC 6026)
M       64*T1                       wait for 2xx retransmits in Accepted (RFC 6026)
======  ==========================  ==========================================

Timer C (proxy INVITE, §16.6) belongs to the proxy core, not to transactions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Timer(enum.Enum):
    """The transaction timers, named as in RFC 3261 §17 and RFC 6026."""

    __hash__ = object.__hash__  # members are singletons: hash by identity (hot tables)

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"


class Interval(enum.Enum):
    """How a timer's next interval is chosen when it is (re)started.

    The retransmission rules (``T1``, ``DOUBLE``, ``DOUBLE_UP_TO_T2``, ``T2``)
    give no timer at all over reliable transports (§17.1.1.2, §17.1.2.2, §17.2.1).
    """

    __hash__ = object.__hash__  # members are singletons: hash by identity (hot tables)

    T1 = "T1: first retransmission"
    DOUBLE = "twice the last interval (Timer A, §17.1.1.2)"
    DOUBLE_UP_TO_T2 = "min(2 * last, T2) (Timers E and G)"
    T2 = "T2 (Timer E in Proceeding, §17.1.2.2)"
    T1_X64 = "64*T1 (Timers F, H, L, M)"
    TIMER_B = "timer_b, 64*T1 unless set (Timer B, §17.1.1.2)"
    T1_X64_OR_ZERO = "64*T1, zero if reliable (Timer J)"
    T4_OR_ZERO = "T4, zero if reliable (Timers I and K)"
    TIMER_D = "timer_d, at least 64*T1, zero if reliable (Timer D)"


_RETRANSMIT = frozenset({Interval.T1, Interval.DOUBLE, Interval.DOUBLE_UP_TO_T2, Interval.T2})


@dataclass(frozen=True, slots=True)
class TransactionConfig:
    """Timer values (RFC 3261 §17.1.1.1, Appendix A) and server options.

    ``t1`` is the RTT estimate, ``t2`` the longest retransmit interval for
    non-INVITE requests and INVITE responses, ``t4`` the time a message stays
    in the network.  ``timer_d`` is Timer D over unreliable transports (at least
    32 s, §17.1.1.2; never less than 64*T1, so it outlives the server's Timer H).
    ``send_trying`` makes an INVITE server transaction answer 100 (Trying) at
    once, which satisfies §17.2.1 without a 200 ms timer in the TU.
    ``timer_b`` is the INVITE client transaction's timeout when it should not
    be 64*T1 (pjsip.conf ``[system] timer_b``; §17.1.1.2 allows a longer one).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0
    send_trying: bool = True
    timer_b: float | None = None

    def interval(self, rule: Interval, *, reliable: bool, last: float | None) -> float | None:
        """The next interval for ``rule``; None means "do not run this timer"."""
        if reliable and rule in _RETRANSMIT:
            return None
        previous = self.t1 if last is None else last
        match rule:
            case Interval.T1:
                return self.t1
            case Interval.DOUBLE:
                return 2 * previous
            case Interval.DOUBLE_UP_TO_T2:
                return min(2 * previous, self.t2)
            case Interval.T2:
                return self.t2
            case Interval.TIMER_B:
                return 64 * self.t1 if self.timer_b is None else self.timer_b
            case Interval.T1_X64:
                return 64 * self.t1
            case Interval.T1_X64_OR_ZERO:
                return 0.0 if reliable else 64 * self.t1
            case Interval.T4_OR_ZERO:
                return 0.0 if reliable else self.t4
            case Interval.TIMER_D:
                return 0.0 if reliable else max(self.timer_d, 64 * self.t1)
