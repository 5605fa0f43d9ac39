"""CDRs in the SQLite ``cdr`` table, and the CallService callback that writes them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from callway.app.b2bua.service import CallRecord, cdr_writer, clid
from callway.store.cdr import RECENT, CdrRow, SqliteCdrStore
from callway.store.sqlite import SqliteLocationStore


def record(uid: str, disposition: str = "ANSWERED", answer: float | None = 101.0) -> CallRecord:
    return CallRecord(
        uniqueid=uid, src="8005", dst="8006", start=100.0, answer=answer, end=110.5,
        disposition=disposition, duration=10, billsec=9 if answer else 0,
    )  # fmt: skip


def test_rows_are_written_on_flush_in_one_batch(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "callway.sqlite")
    write = cdr_writer(store)
    write(record("1"))
    write(record("2", "BUSY", None))
    assert list(store.rows()) == []
    assert store.flush() == 2
    assert store.flush() == 0
    rows = list(store.rows())
    assert rows[0] == CdrRow("1", "8005", "8006", 100.0, 101.0, 110.5, "ANSWERED", 10, 9)
    assert rows[1].answer is None and rows[1].disposition == "BUSY" and rows[1].billsec == 0
    store.close()


def test_shares_the_pbx_state_file_with_the_location_store(tmp_path: Path) -> None:
    path = tmp_path / "callway.sqlite"
    location = SqliteLocationStore(path)
    store = SqliteCdrStore(path)
    cdr_writer(store)(record("7"))
    store.close()
    location.close()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"cdr", "contacts"} <= tables
        (row,) = db.execute('SELECT caller, callee, disposition, "end" FROM cdr').fetchall()
    assert row == ("8005", "8006", "ANSWERED", 110.5)


def test_reopening_keeps_earlier_records(tmp_path: Path) -> None:
    path = tmp_path / "callway.sqlite"
    first = SqliteCdrStore(path)
    first.add(CdrRow("1", "8005", "8006", 1.0, None, 2.0, "NO ANSWER", 1, 0))
    first.close()
    second = SqliteCdrStore(path)
    assert [r.uniqueid for r in second.rows()] == ["1"]
    second.close()


def test_recent_reads_the_latest_records_flushing_the_queue_first(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "callway.sqlite")
    for i in range(RECENT + 5):
        store.add(CdrRow(f"{i}", "8005", "8006", float(i), None, i + 0.5, "BUSY", 0, 0))
    recent = store.recent()  # queued, not yet flushed: recent() flushes
    assert len(recent) == RECENT
    assert (recent[0].uniqueid, recent[-1].uniqueid) == ("5", f"{RECENT + 4}")
    assert [r.uniqueid for r in store.recent(limit=2)] == [f"{RECENT + 3}", f"{RECENT + 4}"]
    assert [r.end for r in store.recent(since=RECENT + 3.0)] == [RECENT + 3.5, RECENT + 4.5]
    assert [r.uniqueid for r in store.recent(limit=1, since=0)] == [f"{RECENT + 4}"]
    assert store.recent(limit=0) == [] and store.recent(since=1e12) == []
    store.close()


def test_recent_of_an_empty_table_is_empty(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "callway.sqlite")
    assert store.recent() == [] and store.recent(limit=5, since=0) == []
    store.close()


def test_asterisk_columns_are_stored(tmp_path: Path) -> None:
    store = SqliteCdrStore(tmp_path / "callway.sqlite")
    full = CallRecord(
        uniqueid="5", src="+1555", dst="8006", start=1.0, answer=2.0, end=3.0,
        disposition="ANSWERED", duration=2, billsec=1, clid='"Customer" <+1555>',
        channel="PJSIP/carrier-00000005", dstchannel="PJSIP/8006-00000006", lastapp="Dial",
        lastdata="PJSIP/8006,30", dcontext="from-carrier", accountcode="acme",
    )  # fmt: skip
    cdr_writer(store)(full)
    (row,) = store.recent()
    assert (row.clid, row.channel, row.dstchannel, row.lastapp, row.lastdata, row.dcontext,
            row.accountcode) == ('"Customer" <+1555>', "PJSIP/carrier-00000005",
                                 "PJSIP/8006-00000006", "Dial", "PJSIP/8006,30", "from-carrier",
                                 "acme")  # fmt: skip
    store.close()


def test_a_table_of_an_earlier_version_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "callway.sqlite"
    with sqlite3.connect(path) as db:  # the table as the first versions made it
        db.execute(
            'CREATE TABLE cdr (id INTEGER PRIMARY KEY AUTOINCREMENT, uniqueid TEXT NOT NULL, '
            'caller TEXT NOT NULL, callee TEXT NOT NULL, "start" REAL NOT NULL, "answer" REAL, '
            '"end" REAL NOT NULL, disposition TEXT NOT NULL, duration INTEGER NOT NULL, '
            "billsec INTEGER NOT NULL)"
        )
        db.execute(
            'INSERT INTO cdr (uniqueid, caller, callee, "start", "end", disposition, duration, '
            "billsec) VALUES ('1', '8005', '8006', 1, 2, 'BUSY', 1, 0)"
        )
    store = SqliteCdrStore(path)
    store.add(CdrRow("2", "8005", "8006", 3.0, None, 4.0, "BUSY", 1, 0, channel="PJSIP/8005-2"))
    old, new = store.recent()
    assert (old.uniqueid, old.channel, old.lastapp) == ("1", "", "")
    assert (new.uniqueid, new.channel) == ("2", "PJSIP/8005-2")
    store.close()


def test_clid_is_asterisks_merge_of_name_and_number() -> None:
    assert clid("Customer", "+1555") == '"Customer" <+1555>'
    assert clid('Say "hi"', "8005") == '"Say \\"hi\\"" <8005>'
    assert clid("", "8005") == "8005"
    assert clid("Reception", "") == "Reception"
