"""Database engine and sessions: SQLite (WAL) embedded, PostgreSQL in production.

SQLite rules: WAL journal, ``synchronous=FULL`` (a committed journal entry survives a power cut, which
the analyser's forgotten message requires), foreign keys on, a busy timeout, and write transactions
opened with ``BEGIN IMMEDIATE`` so two writers queue instead of failing on a stale snapshot.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlmodel import Session

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be used (bad URL, unreachable server, corrupt file, not migrated)."""


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _sqlite_connect_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        pooled = conn.connection  # .info lives as long as the DBAPI connection
        dbapi_conn = pooled.driver_connection
        synchronous = "FULL" if options.get("durable", True) else "NORMAL"
        if pooled.info.get("synchronous") != synchronous:  # a PRAGMA per transaction costs on the ACK path
            dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")
            pooled.info["synchronous"] = synchronous
        dbapi_conn.execute(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")


def create_db_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create the engine for ``url``; raise :class:`DatabaseUnavailable` with one clear line."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"database.url {url!r} is not a database URL") from exc
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            path = parsed.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_connect_hooks(engine)
        elif backend == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = create_engine(
                parsed, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                connect_args={"connect_timeout": 5},
            )
        else:
            raise DatabaseUnavailable(f"database.url: unsupported database {backend!r} (use sqlite or postgresql)")
    except (ArgumentError, NoSuchModuleError) as exc:
        raise DatabaseUnavailable(f"database.url {_redact(url)!r}: {exc}") from exc
    return engine


def check_connection(engine: Engine) -> None:
    """Open a connection and read the schema; turn driver errors into one actionable line."""
    where = _redact(str(engine.url))
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                row = conn.exec_driver_sql("PRAGMA quick_check").scalar()
                if row != "ok":
                    raise DatabaseUnavailable(f"database {where} is corrupt: {row}")
            else:
                conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"cannot connect to database {where}: {reason}") from exc
    except DatabaseError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"database {where} is not usable ({reason}): corrupt or not a database") from exc


@dataclass
class Database:
    """The engine plus session factories: ``read()`` for queries, ``write()`` for transactions."""

    engine: Engine

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10, echo: bool = False) -> Database:
        return cls(create_db_engine(url, pool_size=pool_size, echo=echo))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (no write lock on SQLite)."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any exception (nothing partial).

        ``durable=False`` is for work that can be redone from the journal (parsing and matching): its
        commit does not wait for the disk flush (SQLite ``synchronous=NORMAL`` in WAL mode, PostgreSQL
        ``synchronous_commit=off``). A power cut may lose such a transaction, never corrupt or reorder
        anything; the journal entry is then still ``received`` and is processed again at start-up.
        """
        if self.dialect == "sqlite":
            bind: Any = self.engine.execution_options(sqlite_begin="IMMEDIATE", durable=durable)
        else:
            bind = self.engine
        with Session(bind, expire_on_commit=False) as session:
            try:
                if not durable and self.dialect == "postgresql":
                    session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Connection]:
        """Like :meth:`write`, for SQLAlchemy Core statements only (no ORM session: the analyser hot path)."""
        if self.dialect == "sqlite":
            engine: Engine = self.engine.execution_options(sqlite_begin="IMMEDIATE", durable=durable)
        else:
            engine = self.engine
        with engine.begin() as conn:
            if not durable and self.dialect == "postgresql":
                conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            yield conn

    def table_names(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    def dispose(self) -> None:
        self.engine.dispose()
