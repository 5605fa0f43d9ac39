"""The runtime helpers of a long-running node: collector settings, heap trimming."""

from __future__ import annotations

import gc

import pytest

from callway.app.runtime import FullCollector, MemoryProbe, MemoryTrimmer, tune_gc


def test_tune_gc_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc((1234, 5, 6))
        assert gc.get_threshold() == (1234, 5, 6)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_trims_only_after_a_large_release() -> None:
    trimmer = MemoryTrimmer(min_free=4 * 1024 * 1024)
    if not trimmer.available:
        pytest.skip("not glibc")
    assert not trimmer.maybe_trim()  # nothing was freed since it started
    blocks = [bytearray(1000) for _ in range(20_000)]
    trimmer.maybe_trim()  # the low point is taken while the blocks are in use
    del blocks[::2]  # about 10 MB freed in the middle of the heap
    assert trimmer.maybe_trim()
    assert trimmer.trims == 1
    assert not trimmer.maybe_trim()  # nothing new since
    del blocks


def test_trims_a_smaller_release_once_the_heap_has_settled() -> None:
    trimmer = MemoryTrimmer(min_free=64 * 1024 * 1024, min_settled=1024 * 1024)
    if not trimmer.available:
        pytest.skip("not glibc")
    blocks = [bytearray(1000) for _ in range(8_000)]
    trimmer.maybe_trim()  # the low point is taken while the blocks are in use
    del blocks[::2]  # about 4 MB freed: under min_free
    assert not trimmer.maybe_trim()  # the heap just changed: maybe more is coming
    assert trimmer.maybe_trim()  # unchanged since: settled, trim what was freed
    assert trimmer.trims == 1
    assert not trimmer.maybe_trim()
    del blocks


def test_does_nothing_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("callway.app.runtime._load_glibc", lambda: None)
    trimmer = MemoryTrimmer()
    assert not trimmer.available
    assert trimmer.free_bytes() == 0
    assert not trimmer.maybe_trim()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_full_collection_frees_cycles_once_due() -> None:
    collector = FullCollector(interval=60.0)
    assert collector.maybe_collect(1000.0) is None  # the first call starts the period
    gc.disable()
    try:
        for _ in range(100):
            _Cycle()
        assert collector.maybe_collect(1059.9) is None
        found = collector.maybe_collect(1060.0)
        assert found is not None and found >= 100
        assert collector.collections == 1
        assert collector.maybe_collect(1061.0) is None  # next one at 1120
        assert collector.maybe_collect(1120.0) is not None
    finally:
        gc.enable()


def test_memory_probe_reports_rss_blocks_and_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    probe = MemoryProbe(top=3)
    line = probe.summary()
    assert "rss=" in line and "py_blocks=" in line
    assert probe.growth() == []  # not tracing
    monkeypatch.setenv("CALLWAY_MEMORY_CENSUS", "1")
    tracemalloc.start()
    try:
        first = probe.report()
        assert any(text.startswith("top ") for text in first)
        assert any(text.startswith("census: ") for text in first)
        kept = [f"object {i}" for i in range(10_000)]
        lines = probe.report()
        assert "traced=" in lines[0]
        assert sum(text.startswith("grew ") for text in lines) == 3
        assert any(text.startswith("census: ") for text in lines)
        del kept
    finally:
        tracemalloc.stop()
