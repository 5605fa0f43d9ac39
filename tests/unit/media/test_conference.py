"""ConferenceRoom over real UDP sockets on loopback: mix-minus, leave/kick, ports, limits."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import Awaitable, Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest

from callway.media.conference import ConferenceRoom, RoomClosedError, RoomFullError, RoomRegistry
from callway.media.ports import PortPool
from callway.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from callway.rtp.packet import build_rtp, parse_rtp_header

HOST = "127.0.0.1"
RATE = 8000
FRAME = 160
PT = {"ulaw": 0, "alaw": 8}
ENCODE = {"ulaw": ulaw_encode, "alaw": alaw_encode}
DECODE = {"ulaw": ulaw_decode, "alaw": alaw_decode}


@pytest.fixture
def pool() -> Iterator[PortPool]:
    start = random.randrange(40000, 58000, 2)
    pool = PortPool(HOST, start, start + 400)
    yield pool
    assert pool.in_use == 0, "a test leaked conference ports"


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 8))


class Phone:
    """A fake phone: sends a continuous sine as G.711 RTP, records what comes back."""

    def __init__(self, frequency: float, codec: str = "ulaw") -> None:
        self.frequency = frequency
        self.codec = codec
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.received: list[bytes] = []
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.frame = 0
        self.target: tuple[str, int] | None = None
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return host, port

    def _read(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            self.received.append(data)

    def send(self) -> None:
        if self.target is None:
            return
        t = (np.arange(FRAME) + self.frame * FRAME) / RATE
        pcm = np.rint(8000 * np.sin(2 * np.pi * self.frequency * t)).astype(np.int16)
        payload = ENCODE[self.codec](pcm.tobytes())
        packet = build_rtp(PT[self.codec], self.seq, self.frame * FRAME, self.ssrc, payload)
        self.sock.sendto(packet, self.target)
        self.seq = (self.seq + 1) & 0xFFFF
        self.frame += 1

    def heard(self, skip: int = 0) -> npt.NDArray[np.int16]:
        """The decoded audio received, from packet ``skip`` on."""
        payloads = []
        for data in self.received[skip:]:
            header = parse_rtp_header(data)
            assert header.payload_type == PT[self.codec]
            payloads.append(data[header.payload_offset : header.payload_end])
        return np.frombuffer(DECODE[self.codec](b"".join(payloads)), dtype=np.int16)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


async def talk(phones: list[Phone], seconds: float) -> None:
    """Every phone sends one frame per 20 ms for ``seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in range(round(seconds / 0.02)):
        for phone in phones:
            phone.send()
        await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - loop.time()))


def level(samples: npt.NDArray[np.int16], frequency: float) -> float:
    """Magnitude at ``frequency`` relative to the strongest component."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    index = round(frequency * len(samples) / RATE)
    return float(spectrum[index - 3 : index + 4].max() / spectrum.max())


def assert_hears(phone: Phone, present: list[Phone], absent: list[Phone]) -> None:
    audio = phone.heard(skip=20)  # past the join tones and the jitter buffer's fill
    assert len(audio) >= 15 * FRAME
    for other in present:
        assert level(audio, other.frequency) > 0.3, f"{other.frequency} Hz missing"
    for other in absent:
        assert level(audio, other.frequency) < 0.03, f"{other.frequency} Hz should be absent"


def test_three_phones_each_hear_the_other_two(pool: PortPool) -> None:
    async def scenario() -> None:
        ended: list[ConferenceRoom] = []
        room = ConferenceRoom("r1", pool, on_empty=ended.append)
        a, b, c = Phone(400.0), Phone(700.0, "alaw"), Phone(1100.0)
        a.target = (HOST, room.join("a", "ulaw", a.address))
        b.target = (HOST, room.join("b", "alaw", b.address))
        c.target = (HOST, room.join("c", "ulaw", None))  # learned from its first packet
        assert room.members == ("a", "b", "c") and pool.in_use == 3
        await talk([a, b, c], 1.0)
        await asyncio.sleep(0.1)
        assert_hears(a, [b, c], [a])
        assert_hears(b, [a, c], [b])
        assert_hears(c, [a, b], [c])
        for phone, pid in ((a, "a"), (b, "b"), (c, "c")):
            headers = [parse_rtp_header(data) for data in phone.received]
            assert len({h.ssrc for h in headers}) == 1
            seqs = [h.sequence for h in headers]
            assert all((y - x) & 0xFFFF == 1 for x, y in itertools.pairwise(seqs))
            assert headers[0].marker and not any(h.marker for h in headers[1:])
            stamps = [h.timestamp for h in headers]
            steps = {(y - x) & 0xFFFFFFFF for x, y in itertools.pairwise(stamps)}
            assert all(step % FRAME == 0 for step in steps)  # whole frames (skips when starved)
            assert 35 <= len(headers) <= 60  # about 50 frames a second: no drift, no burst
            info = room.member(pid)
            assert info.latched and info.packets_in >= 45 and info.remote_rtp == phone.address
        for pid in ("a", "b", "c"):
            assert room.leave(pid)
        assert room.closed and ended == [room] and pool.in_use == 0
        for phone in (a, b, c):
            phone.close()

    run(scenario)


def test_muted_member_is_not_heard(pool: PortPool) -> None:
    async def scenario() -> None:
        room = ConferenceRoom("r2", pool, tones=False)
        a, b, c = Phone(400.0), Phone(700.0), Phone(1100.0)
        for pid, phone in (("a", a), ("b", b), ("c", c)):
            phone.target = (HOST, room.join(pid, "ulaw", phone.address))
        room.mute("b")
        assert room.is_muted("b") and room.member("b").muted
        await talk([a, b, c], 0.8)
        await asyncio.sleep(0.1)
        assert_hears(a, [c], [a, b])
        assert_hears(b, [a, c], [b])
        room.close()
        assert room.closed and pool.in_use == 0
        for phone in (a, b, c):
            phone.close()

    run(scenario)


def test_leave_and_kick_release_ports_and_room_ends(pool: PortPool) -> None:
    async def scenario() -> None:
        ended: list[ConferenceRoom] = []
        kicked: list[str] = []
        room = ConferenceRoom("r3", pool, on_empty=ended.append)
        a, b, c = Phone(400.0), Phone(700.0), Phone(1100.0)
        a.target = (HOST, room.join("a", "ulaw", a.address, on_kick=lambda: kicked.append("a")))
        b.target = (HOST, room.join("b", "ulaw", b.address))
        c.target = (HOST, room.join("c", "ulaw", c.address, on_kick=lambda: kicked.append("c")))
        await talk([a, b, c], 0.2)
        assert room.kick("c") and kicked == ["c"]
        assert "c" not in room and pool.in_use == 2 and not room.kick("c")
        await asyncio.sleep(0.05)
        count = len(c.received)
        await talk([a, b, c], 0.2)
        assert len(c.received) == count  # nothing more for the kicked phone
        assert len(b.received) > 15
        assert room.leave("a") and not room.leave("a")
        assert kicked == ["c"] and pool.in_use == 1 and not ended
        assert room.leave("b")
        assert room.closed and ended == [room] and pool.in_use == 0
        with pytest.raises(RoomClosedError):
            room.join("d", "ulaw", a.address)
        room.close()  # idempotent: on_empty fired once
        assert ended == [room]
        for phone in (a, b, c):
            phone.close()

    run(scenario)


def test_max_members_and_bad_joins(pool: PortPool) -> None:
    async def scenario() -> None:
        kicked: list[str] = []
        room = ConferenceRoom("r4", pool, max_members=2)
        room.join("a", "ulaw", (HOST, 9), on_kick=lambda: kicked.append("a"))
        with pytest.raises(ValueError, match="already"):
            room.join("a", "ulaw", (HOST, 9))
        with pytest.raises(ValueError, match="codec"):
            room.join("x", "g722", (HOST, 9))
        room.join("b", "alaw", (HOST, 11))
        with pytest.raises(RoomFullError):
            room.join("c", "ulaw", (HOST, 13))
        assert pool.in_use == 2 and len(room) == 2
        room.close()  # ends the room: members are kicked
        assert kicked == ["a"] and room.closed and pool.in_use == 0

    run(scenario)


def test_registry_gets_or_creates_and_forgets_ended_rooms(pool: PortPool) -> None:
    async def scenario() -> None:
        ended: list[str] = []
        registry = RoomRegistry(pool, tones=False, max_members=5)
        room = registry.get_or_create("sales", on_empty=lambda r: ended.append(r.name))
        assert registry.get_or_create("sales") is room and room.max_members == 5
        assert registry.get("sales") is room and "sales" in registry and len(registry) == 1
        room.join("a", "ulaw", (HOST, 9))
        room.leave("a")
        assert ended == ["sales"] and registry.get("sales") is None and len(registry) == 0
        fresh = registry.get_or_create("sales")
        assert fresh is not room and not fresh.closed
        fresh.join("b", "ulaw", (HOST, 9))
        registry.get_or_create("support").join("c", "alaw", (HOST, 11))
        assert set(registry.rooms) == {"sales", "support"} and pool.in_use == 2
        registry.close_all()
        assert len(registry) == 0 and pool.in_use == 0

    run(scenario)


def test_latching_refuses_strays_and_ignores_non_audio(pool: PortPool) -> None:
    async def scenario() -> None:
        room = ConferenceRoom("r5", pool, tones=False)
        a, b, stray = Phone(400.0), Phone(700.0), Phone(1100.0)
        a.target = (HOST, room.join("a", "ulaw", a.address))
        b.target = stray.target = (HOST, room.join("b", "ulaw", b.address, symmetric=False))
        await talk([a, b], 0.1)
        await talk([stray], 0.1)  # b's port, but b is latched: refused
        b.sock.sendto(build_rtp(101, 1, 0, 1, b"\x01\x0a\x00\xa0"), b.target)  # DTMF event
        b.sock.sendto(b"\x81\xc9\x00\x01" + bytes(4), b.target)  # muxed RTCP
        await asyncio.sleep(0.1)
        info = room.member("b")
        assert info.remote_rtp == b.address and info.dropped >= 4 and info.packets_in == 5
        room.update("b", (HOST, 9), "alaw")
        info = room.member("b")
        assert (info.codec, info.remote_rtp, info.latched) == ("alaw", (HOST, 9), False)
        with pytest.raises(ValueError, match="codec"):
            room.update("b", None, "opus")
        room.close()
        for phone in (a, b, stray):
            phone.close()

    run(scenario)
