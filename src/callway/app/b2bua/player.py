"""Playback() and MusicOnHold(): G.711 RTP generated at the PBX from WAV files.

Prompts are 8 kHz, 16-bit mono WAV files.  A name without a path is looked
up in the prompt directories (callway's own ``prompts/`` first), with or
without the ``.wav`` suffix, the way Asterisk looks in its sounds directory.
Packets leave every 20 ms from the caller's relay port (so they pass the
same NAT pinhole as the bridged audio) with their own SSRC (RFC 3550 §8).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
import wave
from pathlib import Path

from callway.rtp.g711 import alaw_encode, ulaw_encode

log = logging.getLogger("callway.player")

PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
_HEADER = struct.Struct("!BBHII")
_PAYLOAD_TYPES = {"ulaw": 0, "alaw": 8}


class PromptError(Exception):
    """A prompt file is missing or not 8 kHz 16-bit mono."""


def find_prompt(name: str, directories: tuple[Path, ...] = (PROMPT_DIR,)) -> Path:
    """The WAV file for a Playback() argument."""
    candidates = [Path(name)] if "/" in name else [d / name for d in directories]
    for base in candidates:
        for path in (base, base.with_name(base.name + ".wav")):
            if path.is_file():
                return path
    raise PromptError(f"prompt {name!r} not found")


def load_pcm(path: Path) -> bytes:
    """16-bit little-endian PCM samples of an 8 kHz mono WAV file."""
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (8000, 1, 2):
                raise PromptError(f"{path}: need 8 kHz 16-bit mono WAV")
            return wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise PromptError(f"{path}: {exc}") from exc


class RtpPlayer:
    """Sends PCM as G.711 RTP through a socket to a changing remote address."""

    def __init__(self, send: object, remote: object, codec: str) -> None:
        self._send = send
        self._remote = remote
        self.codec = codec if codec in _PAYLOAD_TYPES else "ulaw"
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)

    def encode(self, pcm: bytes) -> bytes:
        """G.711 of the PCM in this player's codec."""
        return ulaw_encode(pcm) if self.codec == "ulaw" else alaw_encode(pcm)

    async def play(self, pcm: bytes, stop: asyncio.Event) -> bool:
        """Play ``pcm`` in real time; False if ``stop`` was set before the end."""
        payload = self.encode(pcm)
        marker = 0x80
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(payload), FRAME_SAMPLES)):
            if stop.is_set():
                return False
            frame = payload[offset : offset + FRAME_SAMPLES]
            header = _HEADER.pack(
                0x80, marker | _PAYLOAD_TYPES[self.codec], self.seq, self.timestamp, self.ssrc
            )
            marker = 0
            remote = self._remote()  # type: ignore[operator]
            if remote is not None:
                try:
                    self._send(header + frame, remote)  # type: ignore[operator]
                except OSError as exc:
                    log.debug("playback send failed: %s", exc)
            self.seq = (self.seq + 1) & 0xFFFF
            self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
            delay = start + (index + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return True
