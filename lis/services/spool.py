"""The journal spool: where an analyser message is committed before the LIS acknowledges it.

ARCHITECTURE.md principle 2 (journal before acknowledge), LIS1-A: before the ACK of a message's last frame;
HL7: before MSA AA. The analyser links commit the raw bytes to this small SQLite file of their own (WAL,
``synchronous=FULL``: the entry survives a power cut), then acknowledge. Processing then *adopts* each entry
into the database's journal (``raw_message``, keyed by the entry's :attr:`SpoolEntry.key`, so adopting twice
creates one row) and parses and stores it; only when the ``raw_message`` row is durable is the spool entry
released (deleted).

Why a file of its own: the acknowledgement's commit never queues behind result processing for the database's
single writer lock (SQLite), nor depends on a network round trip to the database server (PostgreSQL). While
the database is unreachable, analysers are still acknowledged and nothing is lost: entries wait here and are
adopted when it is back. At start-up ``IngestService.recover_spool`` adopts whatever a crash left behind.

A :class:`JournalSpool` connection is used by one thread at a time (the links' journal writer; start-up
recovery runs before it starts).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SPOOL_FILE = "journal-spool.db"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS entry (id INTEGER PRIMARY KEY AUTOINCREMENT, instrument TEXT NOT NULL, "
    "protocol TEXT NOT NULL, direction TEXT NOT NULL, status TEXT NOT NULL, error TEXT NOT NULL, "
    "peer TEXT NOT NULL, received_at TEXT NOT NULL, data BLOB NOT NULL)",
)
_INSERT = ("INSERT INTO entry (instrument, protocol, direction, status, error, peer, received_at, data) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_COLUMNS = "id, instrument, protocol, direction, status, error, peer, received_at, data"


@dataclass(frozen=True, slots=True)
class SpoolItem:
    """What a link asks to journal: the raw bytes and how to file them."""

    instrument: str
    protocol: str
    data: bytes
    peer: str = ""
    direction: str = "in"  # in | out (a message the LIS sent: host-query answer, order download)
    status: str = "received"  # received (to process) | error (quarantine) | processed (kept as sent)
    error: str = ""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One committed spool entry (picklable: it travels to the processing worker process)."""

    id: int
    key: str  # "<spool uuid>:<id>": unique for ever, even if the spool file is replaced
    instrument: str
    protocol: str
    direction: str
    status: str
    error: str
    peer: str
    received_at: datetime
    data: bytes

    @property
    def to_process(self) -> bool:
        """An analyser message to parse and store (not a quarantined block, not a message the LIS sent)."""
        return self.direction == "in" and self.status == "received"


class JournalSpool:
    """The spool file (see module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # LIS1-A / principle 2: committed means on disk
        for statement in _SCHEMA:
            self._conn.execute(statement)
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'uuid'").fetchone()
        if row is None:
            self._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('uuid', ?)", (uuid.uuid4().hex,))
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'uuid'").fetchone()
        self.uuid: str = row[0]

    def append(self, items: Sequence[SpoolItem], *, delete: Sequence[int] = ()) -> list[SpoolEntry]:
        """Commit ``items`` durably in ONE transaction (group commit: one fsync for every link waiting); the
        entries ``delete`` (adopted since, see :meth:`delete`) go in the same transaction."""
        now = datetime.now(UTC)
        stamp = now.isoformat()
        with self._transaction() as conn:
            ids = [conn.execute(_INSERT, (i.instrument, i.protocol, i.direction, i.status, i.error, i.peer[:200],
                                          stamp, i.data)).lastrowid for i in items]
            conn.executemany("DELETE FROM entry WHERE id = ?", [(n,) for n in delete])
        return [SpoolEntry(int(n), f"{self.uuid}:{n}", i.instrument, i.protocol, i.direction, i.status, i.error,
                           i.peer[:200], now, i.data) for n, i in zip(ids, items, strict=True)]

    def delete(self, ids: Sequence[int]) -> None:
        """Delete entries adopted into the database (their ``raw_message`` rows are durable). A delete that is
        lost (a crash first) is harmless: adoption is idempotent by key."""
        if ids:
            with self._transaction() as conn:
                conn.executemany("DELETE FROM entry WHERE id = ?", [(n,) for n in ids])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def pending(self, limit: int | None = None) -> list[SpoolEntry]:
        """Entries not yet released, oldest first (start-up recovery)."""
        sql = f"SELECT {_COLUMNS} FROM entry ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return [SpoolEntry(row[0], f"{self.uuid}:{row[0]}", row[1], row[2], row[3], row[4], row[5], row[6],
                           datetime.fromisoformat(row[7]), bytes(row[8]))
                for row in self._conn.execute(sql)]

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM entry").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


def spool_path(data_dir: Path) -> Path:
    """Where ``lis serve`` keeps the spool: next to the data, on the LIS host's own disk."""
    return data_dir / SPOOL_FILE
