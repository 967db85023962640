"""Peers for the interface tests: a sekmet-fhir FHIR R4 server (session-wide, started once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port


def _sekmet_command() -> list[str] | None:
    exe = Path(sys.executable).with_name("sekmet")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("sekmet")
    return [found] if found else None


@pytest.fixture(scope="session")
def sekmet_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running ``sekmet serve`` (FHIR R4 server); skipped when sekmet-fhir is not installed."""
    command = _sekmet_command()
    if command is None:
        pytest.skip("sekmet-fhir is not installed (pip install sekmet-fhir)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("sekmet")
    base = f"http://127.0.0.1:{port}/fhir"
    env = {**os.environ, "SEKMET_BASE_URL": base, "SEKMET_DB": str(workdir / "sekmet.db")}
    log = (workdir / "sekmet.log").open("wb")
    proc = subprocess.Popen([*command, "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=workdir, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.skip(f"sekmet serve exited with code {proc.returncode}")
            try:
                if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.skip("sekmet serve did not answer within 30 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
