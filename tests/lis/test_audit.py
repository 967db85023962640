"""The hash-chained audit trail: intact chains verify, edits and deletions are found, writers never fork it."""

from __future__ import annotations

import threading

from sqlalchemy import text

from lis.db import Database
from lis.services import audit


def write_events(db: Database, n: int, actor: str = "tech") -> None:
    for i in range(n):
        with db.write() as session:
            audit.record(session, actor, "result.validate", "result", i, before={"status": "pending"},
                         after={"status": "technically_validated", "note": "Nông Thị Hoa"})


def test_intact_chain_verifies(db: Database) -> None:
    write_events(db, 5)
    with db.read() as session:
        report = audit.verify_chain(session)
    assert report.ok and report.events == 5


def test_edited_row_is_detected(db: Database) -> None:
    write_events(db, 5)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'someone-else' WHERE id = 3"))
    with db.read() as session:
        report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == 3 and "modified" in report.reason


def test_deleted_row_is_detected(db: Database) -> None:
    write_events(db, 4)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id = 2"))
    with db.read() as session:
        report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == 2


def test_truncated_tail_rewritten_is_detected(db: Database) -> None:
    """Replacing an event and recomputing only its own hash still breaks the link to the next one."""
    write_events(db, 3)
    with db.read() as session:
        events = audit.events_between(session)
    victim = next(e for e in events if e.id == 2)
    victim.detail = '{"after": "forged"}'
    victim.hash = audit._digest(victim)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET detail = :d, hash = :h WHERE id = 2"),
                     {"d": victim.detail, "h": victim.hash})
    with db.read() as session:
        report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == 3


def test_concurrent_writers_keep_one_chain(db: Database) -> None:
    threads = [threading.Thread(target=write_events, args=(db, 10, f"user{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.read() as session:
        report = audit.verify_chain(session)
    assert report.ok and report.events == 40
