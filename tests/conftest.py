"""Shared fixtures: databases (SQLite and PostgreSQL, both real), a migrated LIS context, peers."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import lis.models  # noqa: F401  (registers the tables)
from lis.config import Config, InstrumentConfig
from lis.context import LisContext
from lis.db import Database

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
PG_ADMIN_URL = os.environ.get("LIS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_unavailable_reason() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}"


_PG_REASON = pg_unavailable_reason()
requires_pg = pytest.mark.skipif(_PG_REASON is not None, reason=_PG_REASON or "")
requires_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """Create an empty PostgreSQL database; drop it afterwards. Yields its URL."""
    if _PG_REASON is not None:
        pytest.skip(_PG_REASON)
    name = f"lis_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def _migrated() -> dict[str, Database]:
    """Backend name -> database migrated once per test run."""
    return {}


def _database_for(backend: str, tmp_path_factory: pytest.TempPathFactory, cache: dict[str, Database],
                  request: pytest.FixtureRequest) -> Database:
    if backend not in cache:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'lis.db'}"
        else:
            url = request.getfixturevalue("pg_database_url")
        db = Database.from_url(url)
        # the schema from the models (fast, and lets new tables be tested before their migration exists);
        # tests/lis/test_migrations.py proves the Alembic migrations build exactly this schema
        SQLModel.metadata.create_all(db.engine)
        cache[backend] = db
    return cache[backend]


def _wipe(db: Database) -> None:
    """Empty every table (keeping the schema) so each test starts clean and runs in any order."""
    tables = sorted(db.table_names() - {"alembic_version"})
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(SQLModel.metadata.sorted_tables):
                if table.name in tables:
                    conn.exec_driver_sql(f'DELETE FROM "{table.name}"')


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """The PostgreSQL database shared by the `db` fixture during this test run."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own, with no schema (for migration and `lis serve` tests)."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
       _migrated: dict[str, Database]) -> Database:
    """A migrated, empty database: every test using it runs on SQLite and on PostgreSQL."""
    database = _database_for(request.param, tmp_path_factory, _migrated, request)
    _wipe(database)
    return database


TEST_INSTRUMENTS = [
    InstrumentConfig(name="xn-1", profile="generic-astm", protocol="astm", transport="tcp-server", port=15001),
    InstrumentConfig(name="bs-1", profile="generic-hl7", protocol="hl7", transport="tcp-server", port=15002),
]


@pytest.fixture
def config(tmp_path: Path, db: Database) -> Config:
    return Config(data_dir=tmp_path, database={"url": str(db.engine.url.render_as_string(hide_password=False))},
                  instruments=TEST_INSTRUMENTS)


@pytest.fixture
def ctx(config: Config, db: Database) -> LisContext:
    """A LIS context on the test database with the real drivers' parsers and the seeded catalogue."""
    from drivers.wiring import register_parsers
    from lis.services.catalog import import_catalog, seed_rows

    context = LisContext(config, db)
    register_parsers(context.parsers)
    tests, panels, ranges = seed_rows()
    with db.write() as session:
        import_catalog(session, tests, panels, ranges, source="seed", actor="test")
    return context
