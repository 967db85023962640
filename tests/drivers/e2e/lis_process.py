"""A real ``lis serve`` process on a seeded SQLite database, and the ``lis simulate`` command, for e2e tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from lis.config import load_config
from lis.db import Database
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]
LIS = [sys.executable, "-m", "lis.cli.main"]


@dataclass
class LisProcess:
    """Config, ports and the running server process (restartable, killable)."""

    directory: Path
    instruments: str = ""
    web_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "lis.toml"

    def write(self, instruments: list[dict[str, Any]]) -> LisProcess:
        lines = [f'[database]\nurl = "sqlite:///{self.directory}/lis.db"\n',
                 f'[web]\nhost = "127.0.0.1"\nport = {self.web_port}\n']
        for inst in instruments:
            inst = dict(inst)
            if inst.get("transport", "tcp-server") != "serial" and "port" not in inst:
                inst["port"] = free_port()
            self.ports[inst["name"]] = inst.get("port", 0)
            lines.append("[[instruments]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in inst.items()))
        self.config.write_text("\n".join(lines), encoding="utf-8")
        return self

    def seed(self) -> None:
        """Schema, then the demo catalogue, users and 30 pending orders.

        The schema is built from the models and stamped at the migration head (as tests/conftest.py does), so
        these tests do not depend on a colleague's migration being written yet; tests/lis/test_migrations.py
        proves the migrations build the same schema.
        """
        from alembic import command
        from sqlmodel import SQLModel

        import lis.models  # noqa: F401  (registers the tables)
        from lis.cli.demo import seed_demo
        from lis.migrate import _alembic_config

        db = self.db()
        SQLModel.metadata.create_all(db.engine)
        cfg = _alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.stamp(cfg, "head")
        with db.write() as session:
            seed_demo(session)
        db.dispose()

    def db(self) -> Database:
        return Database.from_url(load_config(self.config, env={}).database_url)

    def start(self, timeout: float = 40) -> None:
        log = open(self.directory / "serve.log", "ab")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen([*LIS, "serve", "--config", str(self.config)], cwd=REPO, stdout=log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "LIS_LOGGING_LEVEL": "INFO"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lis serve exited: {(self.directory / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.web_port}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("lis serve did not become healthy")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        db = self.db()
        try:
            with db.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), params).all()]
        finally:
            db.dispose()


def simulate(*args: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Run ``lis simulate`` to the end; return its JSON-lines report."""
    proc = subprocess.run([*LIS, "simulate", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def start_simulator(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*LIS, "simulate", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def acked(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in report if e["event"] == "acked"]
