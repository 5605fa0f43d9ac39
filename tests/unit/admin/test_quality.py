"""E-model and RFC 3550 statistics at known points."""

from __future__ import annotations

import pytest

from callway.admin.quality import (
    G711_BPL,
    G711_BPL_NO_PLC,
    ReceptionStats,
    delay_impairment,
    estimate,
    from_report_block,
    loss_impairment,
    mos_from_r,
    r_factor,
)


@pytest.mark.parametrize(
    ("r", "mos"),
    [(93.2, 4.41), (90.0, 4.34), (80.0, 4.02), (70.0, 3.60), (60.0, 3.10), (50.0, 2.58),
     (0.0, 1.0), (-5.0, 1.0), (100.0, 4.5), (120.0, 4.5)],
)  # fmt: skip
def test_mos_from_r_g107_annex_b(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos, abs=0.005)


def test_mos_is_monotonic_in_r() -> None:
    values = [mos_from_r(r / 2) for r in range(0, 201)]
    assert values == sorted(values)


def test_g711_without_impairments_is_the_default_rating() -> None:
    # No loss, no jitter, no network delay: only the codec's 10 ms allowance (Id = 0.24).
    assert r_factor(0.0) == pytest.approx(93.2 - 0.24)
    assert mos_from_r(r_factor(0.0)) == pytest.approx(4.40, abs=0.01)


@pytest.mark.parametrize(
    ("loss", "bpl", "ie_eff"),
    [(0.0, G711_BPL, 0.0), (0.01, G711_BPL, 95 / 26.1), (0.05, G711_BPL, 95 * 5 / 30.1),
     (0.01, G711_BPL_NO_PLC, 95 / 5.3), (0.02, G711_BPL_NO_PLC, 95 * 2 / 6.3)],
)  # fmt: skip
def test_loss_impairment_g107_formula(loss: float, bpl: float, ie_eff: float) -> None:
    assert loss_impairment(loss, 0.0, bpl) == pytest.approx(ie_eff)


def test_total_loss_approaches_95() -> None:
    assert loss_impairment(1.0) == pytest.approx(95 * 100 / 125.1)
    assert mos_from_r(r_factor(1.0)) < 1.5


def test_delay_impairment_knee_at_177_ms() -> None:
    assert delay_impairment(0) == 0
    assert delay_impairment(100) == pytest.approx(2.4)
    assert delay_impairment(177.3) == pytest.approx(0.024 * 177.3)
    assert delay_impairment(300) == pytest.approx(7.2 + 0.11 * 122.7)


def test_jitter_counts_twice_as_buffer_delay() -> None:
    # 20 ms jitter -> 40 ms of jitter buffer + 10 ms codec allowance.
    assert r_factor(0.0, jitter_ms=20.0) == pytest.approx(93.2 - 0.024 * 50)


def test_one_percent_loss_g711_plc_is_still_good() -> None:
    q = estimate(0.01, 5.0)
    assert q.r_factor == pytest.approx(93.2 - 0.024 * 20 - 95 / 26.1, abs=0.01)
    assert q.mos is not None and 4.2 < q.mos < 4.4


def test_unknown_loss_gives_no_mos() -> None:
    q = estimate(None, 3.0)
    assert q.mos is None and q.r_factor is None and q.jitter_ms == 3.0


def test_report_block_fraction_and_jitter_units() -> None:
    q = from_report_block(fraction_lost=64, jitter=80, clock_rate=8000)
    assert q.loss == 0.25
    assert q.jitter_ms == 10.0


def test_reception_stats_counts_loss_with_wraparound() -> None:
    stats = ReceptionStats()
    seqs = [65530 + i for i in range(6)] + list(range(0, 20))
    seqs.remove(2)
    seqs.remove(65533)
    for index, seq in enumerate(seqs):
        stats.update(seq % 65536, index * 160, index * 0.02)
    assert stats.expected == 26
    assert stats.received == 24
    assert stats.lost == 2
    assert stats.loss == pytest.approx(2 / 26)


def test_reception_stats_jitter_of_a_steady_stream_is_zero() -> None:
    stats = ReceptionStats()
    for i in range(50):
        stats.update(i, i * 160, 100.0 + i * 0.020)
    assert stats.jitter_ms == pytest.approx(0.0, abs=1e-6)
    q = stats.quality()
    assert q.loss == 0.0 and q.mos is not None and q.mos > 4.3


def test_reception_stats_jitter_converges_to_alternating_delay() -> None:
    # Transit alternates by 10 ms: D = 80 timestamp units each packet; J -> 80 (10 ms).
    stats = ReceptionStats()
    for i in range(400):
        stats.update(i, i * 160, i * 0.020 + (0.010 if i % 2 else 0.0))
    assert stats.jitter_ms == pytest.approx(10.0, rel=0.01)


def test_reception_stats_duplicates_and_reordering() -> None:
    stats = ReceptionStats()
    for index, seq in enumerate([1, 2, 4, 3, 5, 5]):
        stats.update(seq, seq * 160, index * 0.02)
    assert stats.expected == 5
    assert stats.received == 6
    assert stats.lost == -1
    assert stats.loss == 0.0


def test_reception_stats_resyncs_after_a_confirmed_jump() -> None:
    stats = ReceptionStats()
    for seq in (10, 11, 12):
        stats.update(seq, seq * 160, seq * 0.02)
    stats.update(30000, 0, 1.0)  # a jump: not believed yet
    assert stats.expected == 3
    stats.update(30001, 160, 1.02)  # confirmed: the source restarted
    assert stats.expected == 1 and stats.received == 1


def test_no_packets_no_quality() -> None:
    q = ReceptionStats().quality()
    assert q.loss is None and q.mos is None
