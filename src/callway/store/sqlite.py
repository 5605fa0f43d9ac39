"""The embedded SQLite location store (the single-node default).

Writes are queued and committed together by :meth:`SqliteLocationStore.flush`,
which the PBX shell calls a few times a second and on shutdown: one
transaction per batch keeps REGISTER bursts cheap (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from callway.core.address import Address
from callway.pbx.location import Binding

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    aor TEXT NOT NULL,
    uri TEXT NOT NULL,
    expires REAL NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    source TEXT NOT NULL,
    registered_at REAL NOT NULL,
    path TEXT NOT NULL DEFAULT '[]',
    user_agent TEXT NOT NULL DEFAULT '',
    instance TEXT NOT NULL DEFAULT '',
    reg_id TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (aor, uri)
)
"""

_UPSERT = """
INSERT OR REPLACE INTO contacts
    (aor, uri, expires, call_id, cseq, source, registered_at, path, user_agent,
     instance, reg_id, params)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


_SOURCE_TEXTS: dict[tuple[str, str, int, tuple[str, int] | None], str] = {}
_SOURCE_TEXTS_MAX = 4096


def _source_text(address: Address) -> str:
    """The JSON column of a source address; memoised: phones keep their address."""
    key = (address.transport, address.host, address.port, address.local)
    text = _SOURCE_TEXTS.get(key)
    if text is None:
        text = json.dumps([address.transport, address.host, address.port, address.local])
        if len(_SOURCE_TEXTS) >= _SOURCE_TEXTS_MAX:
            _SOURCE_TEXTS.clear()
        _SOURCE_TEXTS[key] = text
    return text


def _path_text(path: tuple[str, ...]) -> str:
    return json.dumps(list(path)) if path else "[]"


def _source_from(text: str) -> Address:
    transport, host, port, local = json.loads(text)
    return Address(transport, host, int(port), tuple(local) if local else None)


class SqliteLocationStore:
    """Bindings in the ``contacts`` table of an SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._pending: dict[tuple[str, str], Binding | None] = {}

    def save(self, binding: Binding) -> None:
        """Queue an insert-or-replace."""
        self._pending[(binding.aor, binding.uri)] = binding

    def delete(self, aor: str, uri: str) -> None:
        """Queue a delete."""
        self._pending[(aor, uri)] = None

    def flush(self) -> int:
        """Commit what is queued in one transaction; return how many rows changed."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        rows = [
            (
                b.aor, b.uri, b.expires_at, b.call_id, b.cseq, _source_text(b.source),
                b.registered_at, _path_text(b.path), b.user_agent, b.instance,
                b.reg_id, b.params,
            )
            for b in pending.values()
            if b is not None
        ]  # fmt: skip
        gone = [key for key, b in pending.items() if b is None]
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM contacts WHERE aor = ? AND uri = ?", gone)
            self._db.executemany(_UPSERT, rows)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        return len(pending)

    def load(self) -> Iterable[Binding]:
        """Every stored binding."""
        cursor = self._db.execute(
            "SELECT aor, uri, expires, call_id, cseq, source, registered_at, path,"
            " user_agent, instance, reg_id, params FROM contacts"
        )
        for row in cursor.fetchall():
            yield Binding(
                aor=row[0],
                uri=row[1],
                expires_at=row[2],
                call_id=row[3],
                cseq=row[4],
                source=_source_from(row[5]),
                registered_at=row[6],
                path=tuple(json.loads(row[7])),
                user_agent=row[8],
                instance=row[9],
                reg_id=row[10],
                params=row[11],
            )

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._db.close()
