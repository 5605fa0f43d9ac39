"""Conference mixing, mix-minus (sans-I/O): what ``ConfBridge()`` rooms hear.

Every participant pushes its RTP payloads (G.711 u-law, A-law or signed
linear) with their RTP sequence numbers into a small jitter buffer; every
frame period (20 ms) the shell calls :meth:`ConferenceMixer.mix`, which takes
one frame from each buffer and returns, per participant, the sum of everyone
else's audio in that participant's codec.  Like Asterisk's softmix bridge the
sum is computed once and each one's own contribution subtracted ("sum all,
subtract own"), in int32 so the subtraction is exact, then saturated to
int16.  The whole room is one numpy matrix of ``participants x samples``:
decoding, summing, clipping and G.711 encoding are table look-ups and
vector operations with no Python loop over samples.

The jitter buffer orders by RTP sequence number (with 16-bit wrap-around),
drops duplicates and packets whose turn has passed, and plays a missing
frame as silence when later frames are already waiting.  It waits for
``prefill`` frames before it starts playing, and again after it ran dry, so
a sender's jitter up to ``prefill - 1`` frames costs nothing; it never holds
more than ``capacity`` frames (the oldest go first).

A muted participant's audio is dropped but it still hears the room; ``gain``
scales what a participant says and ``listen_gain`` what it hears.  Tones
(:func:`tone`) and other PCM can be queued for the whole room (join/leave
beeps) or for one participant (a private prompt).

Frames are ``frame_samples`` long (160: 20 ms at 8 kHz).  A packet holding
more or fewer samples (another ``ptime``) is cut or padded to one frame, so
signalling should offer ``a=ptime:20``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from callway.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = [
    "CODECS",
    "TONES",
    "ConferenceMixer",
    "ParticipantStats",
    "tone",
]

Pcm = npt.NDArray[np.int16]
Wide = npt.NDArray[np.int32]

CODECS = ("ulaw", "alaw", "slin")
"""Codecs a participant may use: G.711 u-law, A-law, signed linear 16-bit native order."""

SAMPLE_RATE = 8000
_RESYNC = 200  # frames: a sequence jump this large means the sender restarted
_TONE_AMPLITUDE = 6000  # about -15 dBFS: audible, leaves headroom for speech

_DECODE: dict[str, Pcm] = {
    "ulaw": np.frombuffer(ulaw_decode(bytes(range(256))), dtype=np.int16),
    "alaw": np.frombuffer(alaw_decode(bytes(range(256))), dtype=np.int16),
}
# Indexed by sample + 32768; built once through the reference encoders.
_ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16).tobytes()
_ENCODE: dict[str, npt.NDArray[np.uint8]] = {
    "ulaw": np.frombuffer(ulaw_encode(_ALL_SAMPLES), dtype=np.uint8),
    "alaw": np.frombuffer(alaw_encode(_ALL_SAMPLES), dtype=np.uint8),
}

# kind -> (frequency Hz, duration s) segments with 20 ms gaps between them.
TONES: dict[str, tuple[tuple[float, float], ...]] = {
    "join": ((660.0, 0.08), (990.0, 0.12)),  # rising: someone came in
    "leave": ((990.0, 0.08), (660.0, 0.12)),  # falling: someone left
    "beep": ((1000.0, 0.15),),  # a single beep (muted, unmuted, PIN accepted)
}


@cache
def _tone(kind: str) -> bytes:
    if kind not in TONES:
        raise ValueError(f"unknown tone {kind!r}; known: {', '.join(TONES)}")
    parts: list[npt.NDArray[np.float64]] = []
    gap = np.zeros(int(SAMPLE_RATE * 0.02))
    for index, (frequency, duration) in enumerate(TONES[kind]):
        count = int(SAMPLE_RATE * duration)
        t = np.arange(count) / SAMPLE_RATE
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms fades: no clicks
        if index:
            parts.append(gap)
        parts.append(np.sin(2 * math.pi * frequency * t) * ramp * _TONE_AMPLITUDE)
    return np.round(np.concatenate(parts)).astype(np.int16).tobytes()


def tone(kind: str) -> Pcm:
    """The int16 samples of tone ``kind`` (one of :data:`TONES`), generated once."""
    return np.frombuffer(_tone(kind), dtype=np.int16)


@dataclass(frozen=True, slots=True)
class ParticipantStats:
    """Counters of one participant's jitter buffer."""

    received: int  # frames accepted into the buffer
    late: int  # arrived after their turn: dropped
    duplicate: int  # same sequence number already buffered: dropped
    overflow: int  # pushed out because the buffer held ``capacity`` frames
    concealed: int  # missing frames played as silence
    buffered: int  # frames waiting now
    last_heard: float | None  # ``now`` of the last accepted frame


class _JitterBuffer:
    """Frames of one sender ordered by RTP sequence number (16-bit wrap-around)."""

    __slots__ = (
        "capacity",
        "concealed",
        "duplicate",
        "frames",
        "fresh",
        "late",
        "next_seq",
        "overflow",
        "prefill",
        "primed",
        "received",
    )

    def __init__(self, prefill: int, capacity: int) -> None:
        self.prefill = prefill
        self.capacity = capacity
        self.frames: dict[int, Pcm] = {}
        self.next_seq: int | None = None  # the sequence number played next
        self.primed = False
        self.fresh = True  # nothing played since (re)start: an earlier frame may lead
        self.received = self.late = self.duplicate = self.overflow = self.concealed = 0

    def put(self, seq: int, frame: Pcm) -> bool:
        seq &= 0xFFFF
        if self.next_seq is None:
            self.next_seq = seq
        offset = ((seq - self.next_seq + 0x8000) & 0xFFFF) - 0x8000
        if abs(offset) >= _RESYNC:  # the sender restarted its sequence: start over
            self.frames.clear()
            self.next_seq, self.primed, self.fresh, offset = seq, False, True, 0
        elif offset < 0 and self.fresh and self._span_from(seq) <= self.capacity:
            self.next_seq, offset = seq, 0  # reordered before playing began
        elif offset < 0:
            self.late += 1
            return False
        if seq in self.frames:
            self.duplicate += 1
            return False
        if offset >= self.capacity:  # too far ahead: let the oldest go
            start = (seq - self.capacity + 1) & 0xFFFF
            for skipped in range(offset - self.capacity + 1):
                if self.frames.pop((self.next_seq + skipped) & 0xFFFF, None) is not None:
                    self.overflow += 1
            self.next_seq = start
        self.frames[seq] = frame
        self.received += 1
        if len(self.frames) >= self.prefill:
            self.primed = True
        return True

    def _span_from(self, seq: int) -> int:
        return 1 + max((((other - seq) & 0xFFFF) for other in self.frames), default=0)

    def take(self) -> Pcm | None:
        """The next frame to play; None for silence (waiting, dry, or lost)."""
        if not self.primed or self.next_seq is None:
            return None
        if not self.frames:  # ran dry: wait to refill, keep the sequence position
            self.primed = False
            return None
        self.fresh = False
        frame = self.frames.pop(self.next_seq, None)
        self.next_seq = (self.next_seq + 1) & 0xFFFF
        if frame is None:
            self.concealed += 1
        return frame


class _Queue:
    """PCM waiting to be played frame by frame (tones, prompts)."""

    __slots__ = ("chunks", "offset")

    def __init__(self) -> None:
        self.chunks: deque[Pcm] = deque()
        self.offset = 0

    def __bool__(self) -> bool:
        return bool(self.chunks)

    def add(self, samples: Pcm) -> None:
        if len(samples):
            self.chunks.append(samples)

    def frame(self, size: int) -> Wide:
        out = np.zeros(size, dtype=np.int32)
        filled = 0
        while filled < size and self.chunks:
            chunk = self.chunks[0]
            count = min(size - filled, len(chunk) - self.offset)
            out[filled : filled + count] = chunk[self.offset : self.offset + count]
            filled += count
            self.offset += count
            if self.offset == len(chunk):
                self.chunks.popleft()
                self.offset = 0
        return out


class _Participant:
    __slots__ = ("buffer", "codec", "gain", "last_heard", "listen_gain", "muted", "private")

    def __init__(self, codec: str, buffer: _JitterBuffer, muted: bool) -> None:
        self.codec = codec
        self.buffer = buffer
        self.muted = muted
        self.gain = 1.0
        self.listen_gain = 1.0
        self.private = _Queue()
        self.last_heard: float | None = None


def _check_codec(codec: str) -> str:
    if codec not in CODECS:
        raise ValueError(f"unsupported conference codec {codec!r}; known: {', '.join(CODECS)}")
    return codec


class ConferenceMixer:
    """Mix-minus for one room: each participant hears everyone but itself."""

    def __init__(self, frame_samples: int = 160, *, prefill: int = 2, capacity: int = 6) -> None:
        if frame_samples <= 0:
            raise ValueError("frame_samples must be positive")
        if not 1 <= prefill <= capacity:
            raise ValueError("need 1 <= prefill <= capacity")
        self.frame_samples = frame_samples
        self.prefill = prefill
        self.capacity = capacity
        self._parts: dict[str, _Participant] = {}
        self._room = _Queue()
        self.last_mix: float | None = None

    # -- membership ------------------------------------------------------
    def add(
        self,
        pid: str,
        codec: str = "ulaw",
        *,
        muted: bool = False,
        gain: float = 1.0,
        listen_gain: float = 1.0,
    ) -> None:
        """Add participant ``pid`` speaking and hearing ``codec``."""
        if pid in self._parts:
            raise ValueError(f"participant {pid!r} already in the mix")
        part = _Participant(_check_codec(codec), _JitterBuffer(self.prefill, self.capacity), muted)
        part.gain, part.listen_gain = gain, listen_gain
        self._parts[pid] = part

    def remove(self, pid: str) -> bool:
        """Remove ``pid``; False if it was not in the mix."""
        return self._parts.pop(pid, None) is not None

    def __contains__(self, pid: object) -> bool:
        return pid in self._parts

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def participants(self) -> tuple[str, ...]:
        """Participant ids in the order they were added."""
        return tuple(self._parts)

    def codec(self, pid: str) -> str:
        """The codec ``pid`` hears."""
        return self._parts[pid].codec

    def set_codec(self, pid: str, codec: str) -> None:
        """Change the codec ``pid`` speaks and hears (re-INVITE)."""
        self._parts[pid].codec = _check_codec(codec)

    def set_muted(self, pid: str, muted: bool) -> None:
        """Mute (nothing ``pid`` says is heard; it still hears) or unmute."""
        self._parts[pid].muted = muted

    def is_muted(self, pid: str) -> bool:
        """True if ``pid`` is muted."""
        return self._parts[pid].muted

    def set_gain(
        self, pid: str, gain: float | None = None, listen_gain: float | None = None
    ) -> None:
        """Scale what ``pid`` says (``gain``) and what it hears (``listen_gain``)."""
        part = self._parts[pid]
        if gain is not None:
            part.gain = gain
        if listen_gain is not None:
            part.listen_gain = listen_gain

    def stats(self, pid: str) -> ParticipantStats:
        """A snapshot of ``pid``'s jitter buffer counters."""
        part = self._parts[pid]
        buf = part.buffer
        return ParticipantStats(
            buf.received,
            buf.late,
            buf.duplicate,
            buf.overflow,
            buf.concealed,
            len(buf.frames),
            part.last_heard,
        )

    # -- audio in --------------------------------------------------------
    def decode(self, payload: bytes, codec: str) -> Pcm:
        """One frame of int16 samples from a payload (cut or padded to the frame size)."""
        size = self.frame_samples
        if codec == "slin":
            pcm = np.frombuffer(payload, dtype=np.int16, count=min(len(payload) // 2, size))
        else:
            pcm = _DECODE[_check_codec(codec)][np.frombuffer(payload, dtype=np.uint8)[:size]]
        if len(pcm) < size:
            pcm = np.concatenate([pcm, np.zeros(size - len(pcm), dtype=np.int16)])
        return pcm

    def push(
        self, pid: str, payload: bytes, seq: int, now: float, *, codec: str | None = None
    ) -> bool:
        """Buffer one packet's payload from ``pid`` (its codec unless ``codec`` says).

        False if ``pid`` is unknown or the frame was late or a duplicate.
        """
        part = self._parts.get(pid)
        if part is None:
            return False
        if not part.buffer.put(seq, self.decode(payload, codec or part.codec)):
            return False
        part.last_heard = now
        return True

    def queue_pcm(self, samples: Pcm | bytes, pid: str | None = None) -> None:
        """Play int16 ``samples`` to the whole room, or only to ``pid``."""
        pcm = np.frombuffer(samples, dtype=np.int16) if isinstance(samples, bytes) else samples
        (self._room if pid is None else self._parts[pid].private).add(pcm)

    def queue_tone(self, kind: str, pid: str | None = None) -> None:
        """Play tone ``kind`` (join, leave, beep) to everyone, or only to ``pid``."""
        self.queue_pcm(tone(kind), pid)

    # -- audio out -------------------------------------------------------
    def mix(self, now: float) -> dict[str, bytes]:
        """One frame for every participant: everyone else, in its own codec."""
        self.last_mix = now
        parts = self._parts
        if not parts:
            return {}
        size = self.frame_samples
        own = np.zeros((len(parts), size), dtype=np.int32)
        for row, part in enumerate(parts.values()):
            frame = part.buffer.take()
            if frame is None or part.muted:
                continue
            if part.gain == 1.0:
                own[row] = frame
            else:
                own[row] = np.rint(frame * part.gain).astype(np.int32)
        total = own.sum(axis=0, dtype=np.int32)
        if self._room:
            total += self._room.frame(size)
        heard = total - own  # broadcast: row i is everyone but i
        for row, part in enumerate(parts.values()):
            if part.private:
                heard[row] += part.private.frame(size)
            if part.listen_gain != 1.0:
                heard[row] = np.rint(heard[row] * part.listen_gain).astype(np.int32)
        np.clip(heard, -32768, 32767, out=heard)
        return self._encode(heard)

    def _encode(self, heard: Wide) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        rows_by_codec: dict[str, list[int]] = {}
        pids = list(self._parts)
        for row, part in enumerate(self._parts.values()):
            rows_by_codec.setdefault(part.codec, []).append(row)
        for codec, rows in rows_by_codec.items():
            block = heard if len(rows) == len(pids) else heard[rows]
            if codec == "slin":
                data = block.astype(np.int16).tobytes()
                width = 2 * self.frame_samples
            else:
                data = _ENCODE[codec][block + 32768].tobytes()
                width = self.frame_samples
            for index, row in enumerate(rows):
                out[pids[row]] = data[index * width : (index + 1) * width]
        return out
