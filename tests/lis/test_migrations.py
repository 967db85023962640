"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from lis.db import Database
from lis.migrate import current_revision, head_revision, upgrade
from tests.conftest import requires_pg


def assert_schema_matches_models(db: Database) -> None:
    before, after = upgrade(db)
    assert before is None and after == head_revision() == current_revision(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == [], f"models and migrations differ (write a migration): {diff}"
    assert upgrade(db)[0] == head_revision()  # a second upgrade is a no-op


def test_sqlite_migrations_match_models(tmp_path: Path) -> None:
    assert_schema_matches_models(Database.from_url(f"sqlite:///{tmp_path / 'm.db'}"))


@requires_pg
def test_postgresql_migrations_match_models(empty_pg_url: str) -> None:
    db = Database.from_url(empty_pg_url)
    try:
        assert_schema_matches_models(db)
    finally:
        db.dispose()


def test_serve_check_refuses_empty_schema(tmp_path: Path) -> None:
    from lis.db import DatabaseUnavailable
    from lis.migrate import require_current

    db = Database.from_url(f"sqlite:///{tmp_path / 'old.db'}")
    with pytest.raises(DatabaseUnavailable, match="lis db upgrade --config x"):
        require_current(db, " --config x")
