"""Serve the demo lab with the schema built from the models (like ``tests/conftest.py`` does), for when the
Alembic migrations lag behind the models during development. Same composition root as ``lis serve``
(``lis.cli.server.build_context`` / ``build_runtime`` / ``create_app``), real uvicorn, real sockets.

    python -m tests.web.serve_models DATA_DIR PORT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from sqlmodel import SQLModel, select

import lis.models  # noqa: F401  (registers the tables)
from lis.cli.demo import demo_config, seed_demo
from lis.cli.server import build_context, build_runtime, create_app, sync_instruments
from lis.config import load_config, render_config
from lis.context import LisContext
from lis.models import User
from lis.services.users import add_user


def prepare(data_dir: Path, port: int) -> LisContext:
    """The demo database with the schema from the models, seeded; returns its context."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "lis.toml"
    if not config_path.exists():
        config_path.write_text(render_config(demo_config(data_dir.resolve(), "127.0.0.1", port)), encoding="utf-8")
    config = load_config(config_path, env={})
    ctx = build_context(config)
    SQLModel.metadata.create_all(ctx.db.engine)
    with ctx.db.write() as session:
        seed_demo(session)
        for item in filter(None, os.environ.get("LIS_WEB_TEST_USERS", "").split(",")):
            name, role, password = item.split(":")
            if session.exec(select(User).where(User.username == name)).first() is None:
                add_user(session, name, role, password, full_name=f"{role.title()} <b>user</b>", actor="test")
    return ctx


def main(data_dir: Path, port: int) -> None:
    ctx = prepare(data_dir, port)
    sync_instruments(ctx)
    app = create_app(ctx, build_runtime(ctx))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
