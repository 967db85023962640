"""A real ``lis demo`` subprocess on a free port, with API helpers (tokens, ingest, results) for the browser
tests, the screenshots and the web benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from lis.context import LisContext

REPO = Path(__file__).resolve().parents[2]
LIS = [sys.executable, "-m", "lis.cli.main"]
INTEGRATION = ("gateway", "gw-pass-1")
CLINICIAN = ("bsls", "clin-pass-1")
DEMO_PASSWORD = "demo"


def free_port() -> int:
    """A free port P with P+1 and P+2 free too (the demo's analyser listeners sit next to the web port)."""
    import socket

    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port > 65000:
            continue
        try:
            for other in (port + 1, port + 2):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", other))
        except OSError:
            continue
        return port
    raise RuntimeError("no three consecutive free ports")


def migrations_current(sqlite_file: Path) -> bool:
    """Does the migrated demo database have every table and column the models declare?"""
    import sqlite3

    from sqlmodel import SQLModel

    import lis.models  # noqa: F401

    with sqlite3.connect(sqlite_file) as conn:
        for table in SQLModel.metadata.sorted_tables:
            have = {row[1] for row in conn.execute(f'PRAGMA table_info("{table.name}")')}
            if not have or not {c.name for c in table.columns} <= have:
                return False
    return True


class DemoServer:
    """``lis demo --data-dir DIR --port PORT`` (prepared first, plus an integration and a clinician user)."""

    def __init__(self, data_dir: Path, port: int | None = None,
                 seed: Callable[[LisContext], None] | None = None) -> None:
        self.seed = seed
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self._tokens: dict[str, str] = {}
        self.log = data_dir / "server.log"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*LIS, *args], capture_output=True, text=True, cwd=REPO, timeout=120,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise RuntimeError(f"lis {' '.join(args)} failed: {done.stderr.strip()}")

    def start(self, timeout: float = 40.0) -> DemoServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run("demo", "--data-dir", str(self.data_dir), "--port", str(self.port), "--no-serve")
        self.mode = "lis demo" if migrations_current(self.data_dir / "lis.db") else "models"
        if self.mode == "models":  # the migrations lag behind the models: build the schema from the models
            (self.data_dir / "lis.db").unlink()
            if self.seed is not None:
                from tests.web.serve_models import prepare

                self.seed(prepare(self.data_dir, self.port))
            command = [sys.executable, "-m", "tests.web.serve_models", str(self.data_dir), str(self.port)]
        else:
            if self.seed is not None:
                from lis.cli.common import load
                from lis.cli.server import build_context

                self.seed(build_context(load(str(self.data_dir / "lis.toml"))))
            command = [*LIS, "demo", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        users = ((INTEGRATION, "integration"), (CLINICIAN, "clinician"))
        if self.mode == "lis demo":
            for (name, password), role in users:
                self._run("user", "add", "--config", str(self.data_dir / "lis.toml"), name, "--role", role,
                          "--password", password, "--full-name", f"{role.title()} <b>user</b>")
        log = self.log.open("w")
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True, env={
            **os.environ, "PYTHONUNBUFFERED": "1",
            "LIS_WEB_TEST_USERS": ",".join(f"{n}:{r}:{p}" for (n, p), r in users)})
        try:
            self._wait_healthy(timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lis demo exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"lis demo did not become healthy in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- API ------------------------------------------------------------------------------------------------
    def token(self, username: str, password: str = DEMO_PASSWORD) -> str:
        if username not in self._tokens:
            response = httpx.post(f"{self.base}/api/v1/auth/token", json={"username": username, "password": password})
            response.raise_for_status()
            self._tokens[username] = response.json()["access_token"]
        return self._tokens[username]

    def headers(self, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username, password)}"}

    def api(self, method: str, path: str, username: str = "admin", password: str = DEMO_PASSWORD,
            **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=self.headers(username, password),
                             timeout=30, **kwargs)

    def ingest(self, message: bytes, instrument: str = "demo-astm") -> dict[str, Any]:
        response = self.api("POST", f"/ingest/{instrument}", *INTEGRATION, content=message)
        response.raise_for_status()
        return dict(response.json())

    def orders(self, limit: int = 100) -> list[dict[str, Any]]:
        response = self.api("GET", "/orders", params={"limit": limit})
        response.raise_for_status()
        return list(response.json())

    def result(self, result_id: int) -> dict[str, Any]:
        response = self.api("GET", f"/results/{result_id}")
        response.raise_for_status()
        return dict(response.json())

    def results_of(self, specimen: str) -> list[dict[str, Any]]:
        response = self.api("GET", "/results", params={"specimen_id": specimen})
        response.raise_for_status()
        return list(response.json())
