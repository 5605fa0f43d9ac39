"""Voice quality from RTP statistics: RFC 3550 loss and jitter -> E-model -> MOS.

Sans-I/O arithmetic, no clock.  :class:`ReceptionStats` is RFC 3550's
receiver bookkeeping (appendix A.1 sequence tracking, A.3 expected/lost
packets, A.8 interarrival jitter), fed one packet at a time; RTCP report
blocks already carry the same figures (:func:`from_report_block`).

:func:`r_factor` is the ITU-T G.107 E-model reduced to what a relay can
know (the simplification of Cole & Rosenbluth, "Voice over IP performance
monitoring", 2001): default ``R0 - Is = 93.2``, the delay impairment ``Id``
and the effective equipment impairment ``Ie_eff`` from G.107 §3.4 with the
codec's ``Ie`` and ``Bpl`` from ITU-T G.113 Appendix I.  For G.711, ``Ie =
0``; ``Bpl = 25.1`` with packet loss concealment (what phones do), 4.3
without.  :func:`mos_from_r` is G.107 Annex B.
"""

from __future__ import annotations

from dataclasses import dataclass

from callway.admin.model import Quality

__all__ = [
    "G711_BPL",
    "G711_BPL_NO_PLC",
    "R_DEFAULT",
    "ReceptionStats",
    "delay_impairment",
    "estimate",
    "from_report_block",
    "loss_impairment",
    "mos_from_r",
    "r_factor",
]

R_DEFAULT = 93.2  # G.107 R0 - Is with every other parameter at its default
G711_BPL = 25.1  # G.113 Appendix I: G.711 with PLC (Appendix I of G.711)
G711_BPL_NO_PLC = 4.3
CODEC_DELAY_MS = 10.0  # packetisation/look-ahead allowance added to the path delay
_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100


def delay_impairment(delay_ms: float) -> float:
    """``Id`` for a one-way mouth-to-ear delay in milliseconds (G.107 fit)."""
    d = max(0.0, delay_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def loss_impairment(loss: float, ie: float = 0.0, bpl: float = G711_BPL, burst_r: float = 1.0
                    ) -> float:  # fmt: skip
    """``Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)`` with ``loss`` as a fraction."""
    ppl = min(100.0, max(0.0, loss * 100.0))
    return ie + (95.0 - ie) * ppl / (ppl / burst_r + bpl)


def r_factor(
    loss: float,
    jitter_ms: float = 0.0,
    delay_ms: float = 0.0,
    *,
    ie: float = 0.0,
    bpl: float = G711_BPL,
) -> float:
    """The transmission rating R for a stream (G.711 by default).

    The jitter buffer is assumed to hold twice the measured jitter, so the
    delay the listener hears is ``delay_ms + 2 * jitter_ms`` plus the codec's
    allowance; ``delay_ms`` is the network's one-way delay (half the RTCP
    round trip when known, else 0).
    """
    effective_delay = delay_ms + 2.0 * jitter_ms + CODEC_DELAY_MS
    return R_DEFAULT - delay_impairment(effective_delay) - loss_impairment(loss, ie, bpl)


def mos_from_r(r: float) -> float:
    """G.107 Annex B: R -> estimated MOS (conversational quality, 1 .. 4.5).

    The cubic dips just under 1 for R below about 6.5; it is held at 1 there.
    """
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


def estimate(loss: float | None, jitter_ms: float | None, delay_ms: float = 0.0) -> Quality:
    """A :class:`Quality` from measured loss and jitter (MOS only when loss is known)."""
    if loss is None:
        return Quality(loss=None, jitter_ms=jitter_ms)
    loss = min(1.0, max(0.0, loss))
    r = r_factor(loss, jitter_ms or 0.0, delay_ms)
    return Quality(loss=loss, jitter_ms=jitter_ms, r_factor=round(r, 2),
                   mos=round(mos_from_r(r), 2))  # fmt: skip


def from_report_block(fraction_lost: int, jitter: int, clock_rate: int = 8000) -> Quality:
    """Quality from an RTCP reception report (fraction lost /256, jitter in RTP units)."""
    return estimate(fraction_lost / 256.0, jitter * 1000.0 / clock_rate)


@dataclass(slots=True)
class ReceptionStats:
    """RFC 3550 appendix A.1/A.3/A.8 receiver statistics of one RTP source.

    ``update(seq, timestamp, arrival)`` per packet (``arrival`` in seconds on
    any clock).  Probation and resynchronisation follow A.1 with
    ``MIN_SEQUENTIAL = 1``, enough for a relay that already latched its source.
    """

    clock_rate: int = 8000
    received: int = 0
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    jitter: float = 0.0  # RTP timestamp units, RFC 3550 A.8 estimator
    _bad_seq: int = -1
    _transit: float | None = None

    def update(self, seq: int, timestamp: int, arrival: float) -> None:
        """Account one received packet."""
        if self.base_seq < 0:
            self._restart(seq)
        else:
            delta = (seq - self.max_seq) % _SEQ_MOD
            if delta < _MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += _SEQ_MOD
                self.max_seq = seq
            elif delta <= _SEQ_MOD - _MAX_MISORDER:
                if seq != self._bad_seq:  # a big jump: wait for a second packet to confirm
                    self._bad_seq = (seq + 1) % _SEQ_MOD
                    return
                self._restart(seq)
            # else: a duplicate or reordered packet, counted below
        self.received += 1
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

    def _restart(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self._bad_seq = -1
        self._transit = None
        self.jitter = 0.0

    @property
    def expected(self) -> int:
        """Packets expected: extended highest sequence number - base + 1 (A.3)."""
        if self.base_seq < 0:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (negative with duplicates, as RFC 3550 allows)."""
        return self.expected - self.received

    @property
    def loss(self) -> float:
        """Fraction lost, 0..1 (0 before any packet)."""
        expected = self.expected
        return max(0, self.lost) / expected if expected else 0.0

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter in milliseconds."""
        return self.jitter * 1000.0 / self.clock_rate

    def quality(self, delay_ms: float = 0.0) -> Quality:
        """Loss, jitter, R and MOS of the stream so far (None before any packet)."""
        if self.expected == 0:
            return Quality()
        return estimate(self.loss, round(self.jitter_ms, 2), delay_ms)
