"""Finished transactions that only wait out a timer, kept in a few large buffers.

RFC 3261 §17 keeps a transaction for a while after its work is done, only to
absorb retransmissions: a non-INVITE server transaction rests in Completed
for Timer J (64*T1 = 32 s over UDP, §17.2.2), an INVITE transaction in
RFC 6026's Accepted state for Timer L or M (64*T1), a non-INVITE client
transaction in Completed for Timer K (T4 = 5 s over UDP, §17.1.2.2).  A
server handling a thousand requests a second keeps tens of thousands of
them.  As ordinary Python objects (key tuples, strings, records, timer
entries) they fill the small-object allocator's arenas at the load's peak,
and the arenas stay with the process after the load is gone: a handful of
long-lived objects created meanwhile pins each one (DESIGN.md principle 5).

:class:`RestingStore` holds such records without any per-record Python
object: each one is appended to a 1 MiB anonymous memory map as ``header,
key bytes, payload bytes``; an open-addressing hash table in two machine-word
arrays (linear probing, backward-shift deletion) finds it by key.  Every
record of one store has the same lifetime, so records expire in the order
they were added: expiry reads from the head of the oldest map, and a map
whose records have all expired is unmapped, which gives its memory back to
the system at once.

Sans-I/O: nothing here reads the clock; ``now`` is passed in.
"""

from __future__ import annotations

import mmap
import struct
from array import array

# deadline, key hash, key length, payload length, alive
_HEADER = struct.Struct("<dqIIB")
_ALIVE = _HEADER.size - 1  # offset of the alive byte in a header
_SEGMENT = 1 << 20
_OFFSET_BITS = 32
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_MIN_SLOTS = 1 << 10


def _table(size: int) -> array[int]:
    return array("q", bytes(8 * size))


class RestingStore:
    """Records ``key -> payload`` that all live ``interval`` seconds (see the module docstring).

    Keys are given as their ``hash()`` and their bytes (the bytes decide
    equality, the hash only finds candidates).  The table uses the hash's low
    bits as they are: they must be well mixed, as Python's hashes of strings,
    bytes and tuples of them are (not those of small integers).  Adding a key that is already
    stored replaces the record, as a dict would.
    """

    __slots__ = (
        "_ends",
        "_first",
        "_hashes",
        "_head",
        "_mask",
        "_segments",
        "_slots",
        "count",
        "interval",
        "next_deadline",
    )

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._segments: list[mmap.mmap] = []
        self._ends: list[int] = []  # bytes used in each segment
        self._first = 0  # number of self._segments[0]
        self._head = 0  # offset of the oldest record in self._segments[0]
        #: How many records are stored (what ``len()`` gives, without the call).
        self.count = 0
        #: When the oldest record expires (None when there is none).
        self.next_deadline: float | None = None
        self._slots = _table(_MIN_SLOTS)  # position + 1 of a record; 0 is empty
        self._hashes = _table(_MIN_SLOTS)
        self._mask = _MIN_SLOTS - 1

    def __len__(self) -> int:
        return self.count

    @property
    def mapped_bytes(self) -> int:
        """Bytes of memory maps held (records and the space left in the newest map)."""
        return sum(len(segment) for segment in self._segments)

    @property
    def table_slots(self) -> int:
        """Size of the hash table (at most four times the records once they expire)."""
        return len(self._slots)

    # -- the records ------------------------------------------------------

    def add(self, key_hash: int, key: bytes, payload: bytes, now: float) -> None:
        """Store ``payload`` under ``key`` until ``now + interval``."""
        slots = self._slots
        if 2 * self.count + 2 > len(slots):
            self._resize(2 * len(slots))
            slots = self._slots
        hashes, mask = self._hashes, self._mask
        slot = key_hash & mask
        stored = slots[slot]
        while stored:
            if hashes[slot] == key_hash and self._key_at(stored - 1) == key:
                self.pop(key_hash, key)  # replaced, as in a dict
                self.add(key_hash, key, payload, now)
                return
            slot = (slot + 1) & mask
            stored = slots[slot]
        deadline = now + self.interval
        record = _HEADER.pack(deadline, key_hash, len(key), len(payload), 1) + key + payload
        size = len(record)
        segments, ends = self._segments, self._ends
        if not segments or ends[-1] + size > len(segments[-1]):
            segments.append(mmap.mmap(-1, max(_SEGMENT, size)))
            ends.append(0)
        offset = ends[-1]
        segments[-1][offset : offset + size] = record
        ends[-1] = offset + size
        slots[slot] = (((self._first + len(segments) - 1) << _OFFSET_BITS) | offset) + 1
        hashes[slot] = key_hash
        if not self.count:
            self.next_deadline = deadline
        self.count += 1

    def get(self, key_hash: int, key: bytes) -> bytes | None:
        """The payload stored under ``key``, or None."""
        slots, hashes, mask = self._slots, self._hashes, self._mask
        slot = key_hash & mask
        stored = slots[slot]
        while stored:
            if hashes[slot] == key_hash and self._key_at(stored - 1) == key:
                return self._payload_at(stored - 1)
            slot = (slot + 1) & mask
            stored = slots[slot]
        return None

    def pop(self, key_hash: int, key: bytes) -> bytes | None:
        """Remove ``key`` before its time; its payload, or None if absent."""
        slot = self._find(key_hash, key)
        if slot < 0:
            return None
        position = self._slots[slot] - 1
        payload = self._payload_at(position)
        segment, offset = self._locate(position)
        segment[offset + _ALIVE] = 0
        self._delete_slot(slot)
        self.count -= 1
        self._skip_dead()
        self._read_next()
        return payload

    def _read_next(self) -> None:
        """Cache the head record's deadline (the head is alive once _skip_dead ran)."""
        if self.count:
            self.next_deadline = _HEADER.unpack_from(self._segments[0], self._head)[0]
        else:
            self.next_deadline = None

    # -- Timer J, K, L, M -------------------------------------------------

    def expire(self, now: float) -> int:
        """Drop every record whose time is up at ``now``; how many."""
        expired = 0
        unpack, size = _HEADER.unpack_from, _HEADER.size
        slots, mask = self._slots, self._mask
        while self.count:
            segment, end, offset = self._segments[0], self._ends[0], self._head
            base = self._first << _OFFSET_BITS
            while offset < end:
                deadline, key_hash, key_length, length, alive = unpack(segment, offset)
                if alive:
                    if deadline > now:
                        break
                    wanted = (base | offset) + 1  # the record's slot holds its position + 1
                    slot = key_hash & mask
                    while slots[slot] != wanted:
                        slot = (slot + 1) & mask
                    self._delete_slot(slot)
                    self.count -= 1
                    expired += 1
                offset += size + key_length + length
            self._head = offset
            if offset < end:
                break
            self._skip_dead()  # the segment is used up: unmap it
        self._read_next()
        if expired and len(self._slots) > _MIN_SLOTS and 8 * self.count < len(self._slots):
            self._resize(max(_MIN_SLOTS, 1 << (4 * self.count).bit_length()))
        return expired

    # -- the log of records -----------------------------------------------

    def _locate(self, position: int) -> tuple[mmap.mmap, int]:
        return self._segments[(position >> _OFFSET_BITS) - self._first], position & _OFFSET_MASK

    def _payload_at(self, position: int) -> bytes:
        segment, offset = self._locate(position)
        _, _, key_length, length, _ = _HEADER.unpack_from(segment, offset)
        start = offset + _HEADER.size + key_length
        return segment[start : start + length]

    def _skip_dead(self) -> None:
        """Advance the head past removed records and unmap segments left behind."""
        segments, ends = self._segments, self._ends
        while segments:
            if self._head >= ends[0]:
                if len(segments) == 1 and not self.count:
                    segments.pop().close()
                    ends.pop()
                    self._first += 1
                    self._head = 0
                    return
                if len(segments) == 1:
                    return
                segments.pop(0).close()
                ends.pop(0)
                self._first += 1
                self._head = 0
                continue
            if not self.count:  # everything left is dead
                for segment in segments:
                    segment.close()
                self._first += len(segments)
                segments.clear()
                ends.clear()
                self._head = 0
                return
            segment = segments[0]
            _, _, key_length, length, alive = _HEADER.unpack_from(segment, self._head)
            if alive:
                return
            self._head += _HEADER.size + key_length + length

    # -- the hash table ---------------------------------------------------

    def _find(self, key_hash: int, key: bytes) -> int:
        """The slot holding ``key``, or -1."""
        slots, hashes, mask = self._slots, self._hashes, self._mask
        slot = key_hash & mask
        while True:
            stored = slots[slot]
            if not stored:
                return -1
            if hashes[slot] == key_hash and self._key_at(stored - 1) == key:
                return slot
            slot = (slot + 1) & mask

    def _key_at(self, position: int) -> bytes:
        segment, offset = self._locate(position)
        key_length: int = _HEADER.unpack_from(segment, offset)[2]
        start = offset + _HEADER.size
        return segment[start : start + key_length]

    def _delete_slot(self, hole: int) -> None:
        """Empty ``hole``, moving later entries of its probe run back (no tombstones)."""
        slots, hashes, mask = self._slots, self._hashes, self._mask
        slot = hole
        while True:
            slot = (slot + 1) & mask
            stored = slots[slot]
            if not stored:
                break
            # The entry may fill the hole if the hole lies on its probe path,
            # i.e. is no nearer to the entry than its home slot (hash & mask).
            if (slot - hashes[slot]) & mask >= (slot - hole) & mask:
                slots[hole] = stored
                hashes[hole] = hashes[slot]
                hole = slot
        slots[hole] = 0
        hashes[hole] = 0

    def _resize(self, size: int) -> None:
        old_slots, old_hashes = self._slots, self._hashes
        slots, hashes, mask = _table(size), _table(size), size - 1
        for index, stored in enumerate(old_slots):
            if stored:
                key_hash = old_hashes[index]
                slot = key_hash & mask
                while slots[slot]:
                    slot = (slot + 1) & mask
                slots[slot] = stored
                hashes[slot] = key_hash
        self._slots, self._hashes, self._mask = slots, hashes, mask
