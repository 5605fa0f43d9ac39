"""Call detail records in the embedded SQLite store (table ``cdr``).

One row per call, with the fields Asterisk's ``cdr_sqlite3_custom`` module
is usually configured to write: caller (``src``), callee (``dst``), start,
answer, end (Unix times; ``answer`` is NULL for an unanswered call),
disposition (``ANSWERED``, ``NO ANSWER``, ``BUSY``, ``FAILED``), duration
and billsec (whole seconds from start and from answer to end), then
``clid``, ``channel``, ``dstchannel``, ``lastapp``, ``lastdata``,
``dcontext`` and ``accountcode`` (added to a table made by an earlier
version when it is opened).

Rows are queued and committed together by :meth:`SqliteCdrStore.flush`,
which the PBX shell calls with the location store's flush (a few times a
second and on shutdown), so a burst of calls costs one transaction.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RECENT", "CdrRow", "SqliteCdrStore"]

#: How many of the latest records :meth:`SqliteCdrStore.recent` looks at.
RECENT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cdr (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uniqueid TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    "start" REAL NOT NULL,
    "answer" REAL,
    "end" REAL NOT NULL,
    disposition TEXT NOT NULL,
    duration INTEGER NOT NULL,
    billsec INTEGER NOT NULL
)
"""
# Added later: ALTER TABLE adds them to a table an earlier version made.
_ADDED = ("clid", "channel", "dstchannel", "lastapp", "lastdata", "dcontext", "accountcode")

_COLUMNS = ", ".join(
    ("uniqueid", "caller", "callee", '"start"', '"answer"', '"end"', "disposition", "duration",
     "billsec", *_ADDED)
)  # fmt: skip
_INSERT = f"INSERT INTO cdr ({_COLUMNS}) VALUES ({', '.join('?' * (9 + len(_ADDED)))})"
# The last ``?`` rows by id (a range of the rowid: no scan), ended at or after ``?``.
_RECENT = (
    f'SELECT {_COLUMNS} FROM cdr WHERE id > (SELECT coalesce(max(id), 0) FROM cdr) - ? '
    'AND "end" >= ? ORDER BY id'
)


@dataclass(frozen=True, slots=True)
class CdrRow:
    """One call as stored."""

    uniqueid: str
    caller: str
    callee: str
    start: float
    answer: float | None
    end: float
    disposition: str
    duration: int
    billsec: int
    clid: str = ""
    channel: str = ""
    dstchannel: str = ""
    lastapp: str = ""
    lastdata: str = ""
    dcontext: str = ""
    accountcode: str = ""


class SqliteCdrStore:
    """Appends CDRs to the ``cdr`` table of an SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(cdr)")}
        for column in _ADDED:
            if column not in have:
                self._db.execute(f"ALTER TABLE cdr ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        self._pending: list[CdrRow] = []

    def add(self, row: CdrRow) -> None:
        """Queue one record (written by the next :meth:`flush`)."""
        self._pending.append(row)

    def flush(self) -> int:
        """Commit the queued records in one transaction; return how many."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, []
        values = [
            (r.uniqueid, r.caller, r.callee, r.start, r.answer, r.end, r.disposition,
             r.duration, r.billsec, r.clid, r.channel, r.dstchannel, r.lastapp, r.lastdata,
             r.dcontext, r.accountcode)
            for r in pending
        ]  # fmt: skip
        self._db.execute("BEGIN")
        try:
            self._db.executemany(_INSERT, values)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            self._pending[:0] = pending
            raise
        return len(values)

    def recent(self, limit: int | None = None, since: float | None = None) -> list[CdrRow]:
        """Of the latest :data:`RECENT` records, the last ``limit`` ended at ``since`` or later.

        Oldest first; queued records are flushed first, so a call that has
        just ended is there.  This is what the admin API and the console
        show: the PBX keeps no CDRs in memory (a ring of the last calls'
        objects, allocated all through a load, would keep the memory of
        the load's peak from being given back).
        """
        if limit is not None and limit <= 0:
            return []
        self.flush()
        rows = self._db.execute(_RECENT, (RECENT, -math.inf if since is None else since))
        found = [CdrRow(*row) for row in rows.fetchall()]
        return found if limit is None else found[-limit:]

    def rows(self) -> Iterator[CdrRow]:
        """Every stored record, oldest first."""
        cursor = self._db.execute(f"SELECT {_COLUMNS} FROM cdr ORDER BY id")
        for row in cursor.fetchall():
            yield CdrRow(*row)

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._db.close()
