"""pcap files on disk: one per call, or a global one rotated by size.

Writes are unbuffered (one ``write`` per packet record), so a capture being
written can be opened by Wireshark or ``tshark`` at any moment and a crash
loses nothing.  Rotation works like logrotate: ``trace.pcap`` becomes
``trace.pcap.1``, ``.1`` becomes ``.2`` and so on; the oldest beyond ``keep``
is deleted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from callway.ops.pcap import global_header, record

__all__ = ["PcapFile", "RotatingPcapFile"]

HEADER_SIZE = 24
RECORD_HEADER_SIZE = 16


class PcapFile:
    """One classic pcap file, created (or truncated) on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = path.open("wb", buffering=0)
        header = global_header()
        self._file.write(header)
        self.size = len(header)

    def write(self, timestamp: float, packets: list[bytes]) -> None:
        """Append the packets of one message, all stamped ``timestamp``."""
        if self._file is None:
            return
        data = b"".join(record(timestamp, packet) for packet in packets)
        self._file.write(data)
        self.size += len(data)

    def close(self) -> None:
        """Close the file (further writes are ignored)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._file is None


class RotatingPcapFile:
    """A pcap file that starts afresh rather than grow past ``max_bytes``.

    (A single message bigger than that still gets a file of its own.)

    ``keep`` is how many rotated files (``PATH.1`` .. ``PATH.keep``) survive;
    0 keeps none (the full file is simply replaced).
    """

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotations = 0
        self._current = PcapFile(path)

    def write(self, timestamp: float, packets: list[bytes]) -> None:
        """Append one message, rotating first if it would not fit in the file."""
        if self.max_bytes > 0 and self._current.size > HEADER_SIZE:
            size = sum(RECORD_HEADER_SIZE + len(packet) for packet in packets)
            if self._current.size + size > self.max_bytes:
                self.rotate()
        self._current.write(timestamp, packets)

    def rotate(self) -> None:
        """Close the current file, shift the old ones and open a new one."""
        self._current.close()
        for index in range(self.keep - 1, 0, -1):
            older = self._numbered(index)
            if older.exists():
                os.replace(older, self._numbered(index + 1))
        if self.keep > 0:
            os.replace(self.path, self._numbered(1))
        self._current = PcapFile(self.path)
        self.rotations += 1

    def _numbered(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def close(self) -> None:
        """Close the current file."""
        self._current.close()
