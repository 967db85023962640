"""Alembic environment: the engine comes from the Config's attributes (see lis.migrate)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import lis.models  # noqa: F401  (registers every table)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("lis migrations run through lis.migrate, which provides a connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; use lis db upgrade")
run_migrations_online()
