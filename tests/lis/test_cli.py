"""The `lis` command as an operator runs it: real processes, real ports, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from lis.cli.main import cli
from lis.migrate import head_revision
from tests.conftest import free_port, requires_pg
from tests.lis.astm_fixtures import astm_message

REPO = Path(__file__).resolve().parents[2]
LIS = [sys.executable, "-m", "lis.cli.main"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LIS, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def write_config(tmp_path: Path, port: int | None = None, db_url: str | None = None, extra: str = "") -> Path:
    path = tmp_path / "lis.toml"
    path.write_text(
        f'[database]\nurl = "{db_url or f"sqlite:///{tmp_path}/lis.db"}"\n'
        f'[web]\nhost = "127.0.0.1"\nport = {port or free_port()}\n'
        '[[instruments]]\nname = "xn-1"\nprofile = "generic-astm"\nprotocol = "astm"\n'
        f'transport = "tcp-server"\nhost = "127.0.0.1"\nport = {free_port()}\n' + extra,
        encoding="utf-8",
    )
    return path


def one_clean_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("lis: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("command", list(all_commands(cli)), ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@contextmanager
def serving(config: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*LIS, "serve", "--config", str(config)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("lis serve did not become healthy in 30 s")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_full_operator_flow(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    refused = run("serve", "--config", str(config))
    assert "lis db upgrade --config" in one_clean_error(refused)
    assert run("db", "upgrade", "--config", str(config)).returncode == 0
    assert f"database: {head_revision()}" in run("db", "current", "--config", str(config)).stdout
    added = run("user", "add", "--config", str(config), "ktv1", "--role", "technician", "--password", "pw-1234")
    assert added.returncode == 0, added.stderr
    assert "already exists" in one_clean_error(
        run("user", "add", "--config", str(config), "ktv1", "--role", "technician", "--password", "pw-1234"))
    catalog = tmp_path / "tests.csv"
    catalog.write_text("code,name_en,name_vi,loinc,unit,decimals,section,specimen_type,panel\n"
                       "GLU,Glucose,Định lượng glucose,15074-8,mmol/L,1,chemistry,serum,\n", encoding="utf-8")
    imported = run("catalog", "import", "--config", str(config), str(catalog))
    assert imported.returncode == 0 and "1 tests" in imported.stdout
    with serving(config, port):
        base = f"http://127.0.0.1:{port}/api/v1"
        token = httpx.post(f"{base}/auth/token", json={"username": "ktv1", "password": "pw-1234"}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        order = {"patient": {"national_id": "001085000111", "name": "Đỗ Văn Nam", "sex": "M",
                             "birth_date": "1970-01-01"}, "specimen_id": "CLI-1", "tests": ["GLU"]}
        assert httpx.post(f"{base}/orders", json=order, headers=headers).status_code == 201
        assert httpx.get(f"http://127.0.0.1:{port}/login").status_code == 200  # the web UI is mounted too
    # results arrive (here through the ingest service directly) and export in the contract shape
    ingest = ("from lis.cli.common import load; from lis.cli.server import build_context; import sys;"
              "ctx = build_context(load(sys.argv[1]));"
              "print(ctx.ingest.ingest('xn-1', sys.stdin.buffer.read()).status)")
    message = astm_message("CLI-1", [("GLU", "5,6", "mmol/L"), ("K", "4.1", "mmol/L")])
    subprocess.run([sys.executable, "-c", ingest, str(config)], input=message, check=True, cwd=REPO)
    exported = run("results", "export", "--config", str(config), "--format", "json")
    rows = json.loads(exported.stdout)
    assert [(r["test_code"], r["value"], r["status"]) for r in rows] == [("GLU", "5,6", "received"),
                                                                       (None, "4.1", "unmatched")]
    required = {"specimen_id", "instrument", "instrument_test_code", "test_code", "loinc", "value", "units",
                "reference_range", "abnormal_flags", "result_status", "status", "is_qc", "control_lot",
                "observed_at", "patient_name", "raw_message_id"}
    assert required <= set(rows[0]) and rows[0]["patient_name"] == "Đỗ Văn Nam" and rows[0]["loinc"] == "15074-8"
    only = json.loads(run("results", "export", "--config", str(config), "--status", "unmatched").stdout)
    assert [r["instrument_test_code"] for r in only] == ["K"]
    csv_out = run("results", "export", "--config", str(config), "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("id,specimen_id,instrument") and len(csv_out) == 3
    assert "intact" in run("audit", "verify", "--config", str(config)).stdout
    with sqlite3.connect(tmp_path / "lis.db") as conn:
        conn.execute("UPDATE audit_event SET action = 'nothing.happened' WHERE id = 2")
    assert "event 2" in one_clean_error(run("audit", "verify", "--config", str(config)))


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra='[logging]\nlevel = "LOUD"\n')
    proc = run("serve", "--config", str(config))
    assert proc.returncode == 2 and "logging.level" in one_clean_error(proc) and str(config) in proc.stderr
    config.write_text("[web]\nprot = 1\n")
    assert "web.prot: unknown key" in one_clean_error(run("db", "upgrade", "--config", str(config)))


def test_bad_database_url(tmp_path: Path) -> None:
    config = write_config(tmp_path, db_url="mysql://nobody@127.0.0.1/x")
    assert "unsupported database" in one_clean_error(run("db", "upgrade", "--config", str(config)))
    config = write_config(tmp_path, db_url="not a url")
    assert "not a database URL" in one_clean_error(run("db", "upgrade", "--config", str(config)))


def test_unreachable_postgresql(tmp_path: Path) -> None:
    config = write_config(tmp_path, db_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    assert "cannot connect to database" in one_clean_error(run("serve", "--config", str(config)))


def test_corrupt_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "lis.db").write_bytes(b"this is not a database" * 500)
    config = write_config(tmp_path)
    assert "corrupt" in one_clean_error(run("db", "upgrade", "--config", str(config)))


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = write_config(tmp_path, busy.getsockname()[1])
        assert run("db", "upgrade", "--config", str(config)).returncode == 0
        assert "is not available" in one_clean_error(run("serve", "--config", str(config)))


@requires_pg
def test_serve_on_postgresql(tmp_path: Path, empty_pg_url: str) -> None:
    port = free_port()
    config = write_config(tmp_path, port, db_url=empty_pg_url)
    assert run("db", "upgrade", "--config", str(config)).returncode == 0
    with serving(config, port):
        health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health").json()
    assert health["database"] == "postgresql"


def test_demo_comes_up_with_users_and_data(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([*LIS, "demo", "--data-dir", str(tmp_path / "demo"), "--port", str(port)], cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        while time.monotonic() - started < 30:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for username in ("admin", "tech", "doctor"):
            token = httpx.post(f"{base}/auth/token", json={"username": username, "password": "demo"})
            assert token.status_code == 200
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        orders = httpx.get(f"{base}/orders", headers=headers).json()
        assert len(orders) >= 20 and any("ị" in o["patient"]["name"] or "ư" in o["patient"]["name"] for o in orders)
        assert len(httpx.get(f"{base}/tests", headers=headers).json()) >= 40
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "WARNING" in err and "demo" in err
