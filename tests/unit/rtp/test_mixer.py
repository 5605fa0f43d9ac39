"""ConferenceMixer: mix-minus, mute, mixed laws, jitter buffer, saturation, tones."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from callway.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from callway.rtp.mixer import ConferenceMixer, tone

RATE = 8000
FRAME = 160
TONES = {"a": 400.0, "b": 700.0, "c": 1100.0}
ENCODE: dict[str, Callable[[bytes], bytes]] = {
    "ulaw": ulaw_encode,
    "alaw": alaw_encode,
    "slin": bytes,
}
DECODE: dict[str, Callable[[bytes], bytes]] = {
    "ulaw": ulaw_decode,
    "alaw": alaw_decode,
    "slin": bytes,
}


def sine(frequency: float, frame: int, amplitude: float = 8000.0) -> bytes:
    """Frame ``frame`` of a continuous sine, as int16 PCM bytes."""
    t = (np.arange(FRAME) + frame * FRAME) / RATE
    return np.rint(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16).tobytes()


def constant(value: int) -> bytes:
    return np.full(FRAME, value, dtype=np.int16).tobytes()


def pcm(data: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(data, dtype=np.int16)


def level(samples: npt.NDArray[np.int16], frequency: float) -> float:
    """Relative magnitude at ``frequency`` (1.0 = the strongest component)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    peak = spectrum.max()
    if peak == 0:
        return 0.0
    index = round(frequency * len(samples) / RATE)
    return float(spectrum[index - 2 : index + 3].max() / peak)


def run_room(
    codecs: dict[str, str], frames: int = 30, muted: tuple[str, ...] = ()
) -> dict[str, npt.NDArray[np.int16]]:
    """Everyone sends its tone for ``frames`` frames; what each one heard, decoded."""
    mixer = ConferenceMixer()
    for pid, codec in codecs.items():
        mixer.add(pid, codec, muted=pid in muted)
    heard: dict[str, list[bytes]] = {pid: [] for pid in codecs}
    for frame in range(frames):
        now = frame * 0.02
        for pid, codec in codecs.items():
            mixer.push(pid, ENCODE[codec](sine(TONES[pid], frame)), 1000 + frame, now)
        for pid, payload in mixer.mix(now).items():
            heard[pid].append(DECODE[codecs[pid]](payload))
    # Skip the jitter buffer's prefill: analyse the steady state only.
    return {pid: pcm(b"".join(chunks[5:])) for pid, chunks in heard.items()}


def assert_hears(heard: npt.NDArray[np.int16], present: set[str], absent: set[str]) -> None:
    for pid in present:
        assert level(heard, TONES[pid]) > 0.5, f"tone of {pid} missing"
    for pid in absent:
        assert level(heard, TONES[pid]) < 0.02, f"tone of {pid} should not be heard"


def test_each_hears_the_other_two_and_not_itself() -> None:
    heard = run_room({"a": "ulaw", "b": "ulaw", "c": "ulaw"})
    for pid in TONES:
        assert_hears(heard[pid], set(TONES) - {pid}, {pid})


def test_muted_participant_is_not_heard_but_still_hears() -> None:
    heard = run_room({"a": "ulaw", "b": "ulaw", "c": "ulaw"}, muted=("b",))
    assert_hears(heard["a"], {"c"}, {"a", "b"})
    assert_hears(heard["c"], {"a"}, {"b", "c"})
    assert_hears(heard["b"], {"a", "c"}, {"b"})


def test_mute_toggles_at_runtime() -> None:
    mixer = ConferenceMixer(prefill=1)
    mixer.add("a", "slin")
    mixer.add("b", "slin")
    mixer.push("a", constant(1000), 1, 0.0)
    assert pcm(mixer.mix(0.0)["b"]).tolist() == [1000] * FRAME
    mixer.set_muted("a", True)
    assert mixer.is_muted("a")
    mixer.push("a", constant(1000), 2, 0.02)
    out = mixer.mix(0.02)
    assert not pcm(out["b"]).any()
    assert set(out) == {"a", "b"}


def test_ulaw_alaw_and_linear_participants_mix() -> None:
    codecs = {"a": "ulaw", "b": "alaw", "c": "slin"}
    heard = run_room(codecs)
    for pid in TONES:
        assert_hears(heard[pid], set(TONES) - {pid}, {pid})


def test_output_is_in_each_participants_codec() -> None:
    mixer = ConferenceMixer(prefill=1)
    mixer.add("u", "ulaw")
    mixer.add("a", "alaw")
    mixer.add("s", "slin")
    mixer.push("s", constant(5000), 1, 0.0)
    out = mixer.mix(0.0)
    assert out["u"] == ulaw_encode(constant(5000))
    assert out["a"] == alaw_encode(constant(5000))
    assert out["s"] == constant(0)


def pair() -> ConferenceMixer:
    """Talker ``t`` (linear, exact) and listener ``l``; prefill 2 frames."""
    mixer = ConferenceMixer(prefill=2, capacity=6)
    mixer.add("t", "slin")
    mixer.add("l", "slin")
    return mixer


def played(mixer: ConferenceMixer, count: int) -> list[int]:
    """The first sample of each of the next ``count`` frames the listener hears."""
    return [int(pcm(mixer.mix(0.0)["l"])[0]) for _ in range(count)]


def test_reordered_frames_play_in_sequence_order() -> None:
    mixer = pair()
    for seq in (10, 12, 11, 14, 13, 15):
        mixer.push("t", constant(seq), seq, 0.0)
    assert played(mixer, 7) == [10, 11, 12, 13, 14, 15, 0]


def test_reordering_before_playout_starts() -> None:
    mixer = pair()
    mixer.push("t", constant(21), 21, 0.0)
    mixer.push("t", constant(20), 20, 0.0)
    assert played(mixer, 2) == [20, 21]


def test_loss_is_silence_and_duplicates_and_late_frames_drop() -> None:
    mixer = pair()
    for seq in (1, 2, 4):
        assert mixer.push("t", constant(seq), seq, 0.0)
    assert not mixer.push("t", constant(99), 2, 0.0)  # duplicate
    assert played(mixer, 3) == [1, 2, 0]  # 3 was lost: silence
    assert not mixer.push("t", constant(3), 3, 0.1)  # its turn has passed
    assert played(mixer, 1) == [4]
    stats = mixer.stats("t")
    assert (stats.received, stats.duplicate, stats.late, stats.concealed) == (3, 1, 1, 1)
    assert stats.last_heard == 0.0


def test_sequence_wraps_around() -> None:
    mixer = pair()
    for seq in (65534, 65535, 0, 1):
        mixer.push("t", constant(seq % 1000 + 1), seq, 0.0)
    assert played(mixer, 4) == [535, 536, 1, 2]


def test_prefill_then_underrun_waits_to_refill() -> None:
    mixer = pair()
    mixer.push("t", constant(1), 1, 0.0)
    assert played(mixer, 1) == [0]  # one frame: still filling
    mixer.push("t", constant(2), 2, 0.0)
    assert played(mixer, 3) == [1, 2, 0]  # dry after two
    mixer.push("t", constant(3), 3, 0.0)
    assert played(mixer, 1) == [0]  # refilling, position kept
    mixer.push("t", constant(4), 4, 0.0)
    assert played(mixer, 2) == [3, 4]
    assert mixer.stats("t").concealed == 0


def test_overflow_drops_oldest_and_jump_resyncs() -> None:
    mixer = pair()
    for seq in range(1, 11):
        mixer.push("t", constant(seq), seq, 0.0)
    stats = mixer.stats("t")
    assert (stats.buffered, stats.overflow) == (6, 4)
    assert played(mixer, 6) == [5, 6, 7, 8, 9, 10]
    for seq in (40000, 40001):  # the sender restarted its sequence
        mixer.push("t", constant(seq % 100), seq, 0.0)
    assert played(mixer, 2) == [0, 1]


def test_sum_saturates_instead_of_wrapping() -> None:
    mixer = ConferenceMixer(prefill=1)
    for pid in ("a", "b", "c", "l"):
        mixer.add(pid, "slin")
    for pid in ("a", "b", "c"):
        mixer.push(pid, constant(30000), 1, 0.0)
    out = mixer.mix(0.0)
    assert pcm(out["l"]).tolist() == [32767] * FRAME
    assert pcm(out["a"]).tolist() == [32767] * FRAME  # b + c = 60000, clipped
    mixer.push("a", constant(-30000), 2, 0.02)
    mixer.push("b", constant(-30000), 2, 0.02)
    assert pcm(mixer.mix(0.02)["l"]).tolist() == [-32768] * FRAME


def test_talk_and_listen_gain() -> None:
    mixer = ConferenceMixer(prefill=1)
    mixer.add("t", "slin", gain=0.5)
    mixer.add("l", "slin", listen_gain=3.0)
    mixer.add("m", "slin")
    mixer.push("t", constant(1000), 1, 0.0)
    out = mixer.mix(0.0)
    assert pcm(out["m"]).tolist() == [500] * FRAME
    assert pcm(out["l"]).tolist() == [1500] * FRAME
    mixer.set_gain("t", gain=1.0)
    mixer.push("t", constant(1000), 2, 0.0)
    assert pcm(mixer.mix(0.0)["m"]).tolist() == [1000] * FRAME


def test_tones_reach_everyone_or_one() -> None:
    join = tone("join")
    assert join is not tone("join") and np.array_equal(join, tone("join"))  # generated once
    assert level(join[:640], 660.0) > 0.9 and level(join[-800:], 990.0) > 0.9
    mixer = ConferenceMixer()
    mixer.add("a", "slin")
    mixer.add("b", "slin")
    mixer.queue_tone("join")
    frames = (len(join) + FRAME - 1) // FRAME
    heard = [mixer.mix(0.0) for _ in range(frames + 1)]
    for pid in ("a", "b"):
        got = pcm(b"".join(out[pid] for out in heard))
        assert np.array_equal(got[: len(join)], join)
        assert not got[len(join) :].any()
    mixer.queue_tone("beep", "b")
    out = mixer.mix(0.0)
    assert not pcm(out["a"]).any() and pcm(out["b"]).any()
    with pytest.raises(ValueError, match="unknown tone"):
        tone("fanfare")


def test_membership_and_errors() -> None:
    mixer = ConferenceMixer()
    assert mixer.mix(0.0) == {}
    mixer.add("a", "ulaw")
    with pytest.raises(ValueError, match="already"):
        mixer.add("a", "ulaw")
    with pytest.raises(ValueError, match="unsupported"):
        mixer.add("b", "g729")
    assert "a" in mixer and len(mixer) == 1 and mixer.participants == ("a",)
    assert not mixer.push("ghost", b"\xff" * FRAME, 1, 0.0)
    mixer.set_codec("a", "alaw")
    assert mixer.codec("a") == "alaw"
    assert mixer.remove("a") and not mixer.remove("a")


def test_short_and_long_payloads_are_fitted_to_one_frame() -> None:
    mixer = ConferenceMixer(prefill=1)
    mixer.add("t", "ulaw")
    mixer.add("l", "slin")
    mixer.push("t", ulaw_encode(constant(1000))[:80], 1, 0.0)
    out = pcm(mixer.mix(0.0)["l"])
    assert len(out) == FRAME and out[:80].all() and not out[80:].any()
    mixer.push("t", ulaw_encode(constant(1000)) * 2, 2, 0.0)
    assert len(mixer.mix(0.0)["l"]) == 2 * FRAME
