"""Schema migrations with Alembic: ``lis db upgrade`` and the start-up check of ``lis serve``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from lis.db import Database, DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str]:
    """Apply migrations up to ``revision``; return (before, after)."""
    before = current_revision(db)
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(db) or ""


def autogenerate(db: Database, message: str) -> None:
    """Developer helper: write a new migration from the models (``lis db revision``)."""
    cfg = _alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def require_current(db: Database, config_hint: str) -> None:
    """Refuse to serve an unmigrated or outdated database (fail with the command that fixes it)."""
    current = current_revision(db)
    head = head_revision()
    if current != head:
        state = "has no LIS schema" if current is None else f"is at schema {current}, this LIS needs {head}"
        raise DatabaseUnavailable(f"the database {state}: run `lis db upgrade{config_hint}` first")
