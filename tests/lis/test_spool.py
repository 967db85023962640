"""The journal spool (ARCHITECTURE.md principle 2): durable before the ACK, adopted once, released after."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlmodel import select

from lis.context import LisContext
from lis.events import MessageQuarantined, ResultsIngested
from lis.models import RawMessage, RawMessageStatus, Result
from lis.services.spool import JournalSpool, SpoolItem
from tests.drivers.transports.helpers import make_orders

ASTM = (b"H|\\^&|||XN^1|||||||P|LIS2-A2|20261127080000\rP|1\rO|1|SP-1||^^^GLU\r"
        b"R|1|^^^GLU|5.5|mmol/L||N||F\rL|1|N\r")


def _item(data: bytes = ASTM, **how: str) -> SpoolItem:
    return SpoolItem("xn-1", "astm", data, "127.0.0.1:4000", **how)


def test_entries_are_on_disk_when_append_returns_and_keep_their_keys_after_reopening(tmp_path: Path) -> None:
    spool = JournalSpool(tmp_path / "spool.db")
    first, second = spool.append([_item(), _item(b"other")])
    assert (first.id, second.id) == (1, 2) and first.key != second.key and first.key.endswith(":1")
    # another connection (another process after a crash) sees both: the commit was complete
    other = sqlite3.connect(tmp_path / "spool.db")
    assert other.execute("SELECT COUNT(*) FROM entry").fetchone()[0] == 2
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    spool.close()
    again = JournalSpool(tmp_path / "spool.db")
    assert again.uuid == spool.uuid
    assert [(e.id, e.key, e.data, e.peer) for e in again.pending()] == [
        (1, first.key, ASTM, "127.0.0.1:4000"), (2, second.key, b"other", "127.0.0.1:4000")]
    assert again.pending()[0].received_at == first.received_at


def test_adopted_entries_are_deleted_with_the_next_commit_or_alone_and_ids_are_never_reused(tmp_path: Path) -> None:
    spool = JournalSpool(tmp_path / "spool.db")
    a, b = spool.append([_item(), _item()])
    (c,) = spool.append([_item()], delete=[a.id])  # in the same transaction as the new entry
    assert [e.id for e in spool.pending()] == [b.id, c.id]
    spool.delete([b.id, c.id])
    assert spool.count() == 0
    (d,) = spool.append([_item()])
    assert d.id == 4  # AUTOINCREMENT: a key once used is never handed out again


def test_a_failed_commit_keeps_nothing_and_the_next_one_works(tmp_path: Path) -> None:
    spool = JournalSpool(tmp_path / "spool.db")
    blocker = sqlite3.connect(tmp_path / "spool.db", timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: our commit cannot happen
    spool._conn.execute("PRAGMA busy_timeout=50")
    try:
        spool.append([_item()])
        raise AssertionError("append should have failed")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
    blocker.execute("ROLLBACK")
    (entry,) = spool.append([_item()])
    assert [e.id for e in spool.pending()] == [entry.id]


def test_adopt_is_idempotent_by_spool_key(ctx: LisContext, tmp_path: Path) -> None:
    spool = JournalSpool(tmp_path / "spool.db")
    entries = spool.append([_item(), _item(b"bad", status="error", error="checksum"), _item(b"sent", direction="out",
                                                                                             status="processed")])
    first = ctx.ingest.adopt(entries)
    assert ctx.ingest.adopt(entries) == first  # a crash before the release: adopted again, no second row
    assert ctx.ingest.adopt(entries[1:]) == first[1:]
    with ctx.db.read() as session:
        rows = session.exec(select(RawMessage).order_by(RawMessage.id)).all()
    assert [(r.spool_key, r.status, r.direction, r.error, r.data) for r in rows] == [
        (entries[0].key, "received", "in", "", ASTM), (entries[1].key, "error", "in", "checksum", b"bad"),
        (entries[2].key, "processed", "out", "", b"sent")]
    assert rows[0].received_at == entries[0].received_at and rows[0].peer == "127.0.0.1:4000"


def test_process_entries_stores_results_and_returns_the_events_instead_of_publishing(ctx: LisContext,
                                                                                    tmp_path: Path) -> None:
    make_orders(ctx, {"SP-1": ["GLU"]})
    published: list[object] = []
    ctx.bus.subscribe(ResultsIngested, published.append)
    spool = JournalSpool(tmp_path / "spool.db")
    entries = spool.append([_item(), _item(b"\x02garbage", status="error", error="bad frame")])
    pairs = ctx.ingest.process_entries(entries)
    assert published == []
    (ok, ok_event), (bad, bad_event) = pairs
    assert ok.status == RawMessageStatus.PROCESSED and len(ok.result_ids) == 1
    assert isinstance(ok_event, ResultsIngested) and ok_event.result_ids == tuple(ok.result_ids)
    assert bad.status == "error" and bad_event == MessageQuarantined(bad.raw_message_id, "xn-1", "bad frame")
    # again (the release was lost): same rows, no second result
    again = ctx.ingest.process_entries(entries)
    assert [o.raw_message_id for o, _ in again] == [ok.raw_message_id, bad.raw_message_id]
    with ctx.db.read() as session:
        assert len(session.exec(select(Result)).all()) == 1


def test_recover_spool_adopts_what_a_crash_left_then_catch_up_processes_it(ctx: LisContext, tmp_path: Path) -> None:
    from lis.runtime import PendingJournalCatchUp

    make_orders(ctx, {"SP-1": ["GLU"]})
    spool = JournalSpool(tmp_path / "spool.db")
    entries = spool.append([_item(), _item(b"x", status="error", error="oversize")])
    ctx.ingest.adopt(entries[:1])  # the crash came after the adoption of the first, before its release
    spool.close()

    quarantined: list[MessageQuarantined] = []
    ctx.bus.subscribe(MessageQuarantined, quarantined.append)
    reopened = JournalSpool(tmp_path / "spool.db")
    import asyncio

    asyncio.run(PendingJournalCatchUp(ctx.ingest, reopened).start())
    assert reopened.count() == 0
    with ctx.db.read() as session:
        rows = session.exec(select(RawMessage).order_by(RawMessage.id)).all()
        stored = session.exec(select(Result)).all()
    assert [(r.spool_key, r.status) for r in rows] == [(entries[0].key, "processed"), (entries[1].key, "error")]
    assert [(r.accession, r.test_code, r.value) for r in stored] == [("SP-1", "GLU", "5.5")]
    assert [q.error for q in quarantined] == ["oversize"]


def test_adoption_never_fails_on_text_a_link_wrote(ctx: LisContext, tmp_path: Path) -> None:
    """A NUL in a quarantine reason (PostgreSQL refuses NUL in text) must not block the instrument's queue."""
    spool = JournalSpool(tmp_path / "spool.db")
    entries = spool.append([_item(b"\x00\x01", status="error", error="bad byte \x00 in frame")])
    [raw_id] = ctx.ingest.adopt(entries)
    with ctx.db.read() as session:
        row = session.get(RawMessage, raw_id)
    assert row is not None and row.error == "bad byte \\x00 in frame" and row.data == b"\x00\x01"
