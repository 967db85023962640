"""End to end over TCP: the simulator and python-hl7 against a real ``lis serve`` process."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.drivers.e2e.lis_process import LIS, REPO, LisProcess, acked, simulate


@pytest.fixture(scope="module")
def lis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LisProcess]:
    process = LisProcess(tmp_path_factory.mktemp("serve")).write([
        {"name": "astm-1", "profile": "generic-astm", "protocol": "astm", "transport": "tcp-server"},
        {"name": "hl7-1", "profile": "generic-hl7", "protocol": "hl7", "transport": "tcp-server"},
    ])
    process.seed()
    process.start()
    yield process
    process.stop()


def _export(lis: LisProcess, instrument: str) -> list[dict[str, object]]:
    proc = subprocess.run([*LIS, "results", "export", "--config", str(lis.config), "--instrument", instrument],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_astm_simulator_with_pending_orders_and_host_query(lis: LisProcess) -> None:
    report = simulate("--profile", "generic-astm", "--to", f"tcp://127.0.0.1:{lis.ports['astm-1']}",
                      "--from-config", str(lis.config), "--count", "6", "--query", "--qc-every", "4")
    done = acked(report)
    assert len(done) == 6
    answers = {e["specimen"]: e["tests"] for e in report if e["event"] == "answer"}
    assert answers and all(answers.values())  # the LIS answered each pending specimen with its tests
    exported = _export(lis, "astm-1")
    for event in done:
        rows = [r for r in exported if r["specimen_id"] == event["specimen"]
                or (event["qc"] and str(r["specimen_id"]).startswith("QC"))]
        assert len(rows) >= 1
    patient = [e for e in done if not e["qc"]]
    matched = [r for r in exported if r["specimen_id"] in {e["specimen"] for e in patient}]
    assert matched and all(r["status"] != "unmatched" for r in matched)
    status = httpx.get(f"http://127.0.0.1:{lis.web_port}/api/v1/health", timeout=5)
    assert status.status_code == 200


def test_hl7_simulator_and_python_hl7_mllp_send(lis: LisProcess, tmp_path: Path) -> None:
    report = simulate("--profile", "generic-hl7", "--to", f"tcp://127.0.0.1:{lis.ports['hl7-1']}",
                      "--from-config", str(lis.config), "--count", "4")
    assert len(acked(report)) == 4
    message = ("MSH|^~\\&|ANALYSER|LAB|LIS||20261126101500||ORU^R01|MLLP-SEND-1|P|2.5.1||||||UNICODE UTF-8\r"
               "PID|1||P77\rOBR|1||E2E-777|GLU^Glucose^99X\rOBX|1|NM|GLU^Glucose^99X||6.1|mmol/L|3.9-6.1|N|||F\r")
    path = tmp_path / "oru.hl7"
    path.write_bytes(message.replace("\r", "\n").encode())
    proc = subprocess.run([str(Path(LIS[0]).parent / "mllp_send"), "--loose", "--file", str(path), "--port",
                           str(lis.ports["hl7-1"]), "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "MSA|AA|MLLP-SEND-1" in proc.stdout.replace("\r", "\n")
    exported = _export(lis, "hl7-1")
    assert any(r["specimen_id"] == "E2E-777" and r["test_code"] == "GLU" for r in exported)
    instruments = {i["name"]: i for i in _instruments(lis)}
    assert instruments["hl7-1"]["messages"] >= 5 and instruments["hl7-1"]["state"] in ("listening", "connected")


def _instruments(lis: LisProcess) -> list[dict[str, object]]:
    token = httpx.post(f"http://127.0.0.1:{lis.web_port}/api/v1/auth/token",
                       json={"username": "admin", "password": "demo"}, timeout=10)
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    response = httpx.get(f"http://127.0.0.1:{lis.web_port}/api/v1/instruments", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_capture_replay_of_a_real_analyser(lis: LisProcess) -> None:
    capture = REPO.parent / "shared" / "corpus" / "astm" / "sysmex_xn550.astm"
    if not capture.exists():
        pytest.skip("the shared ASTM corpus is not present")
    report = simulate("--profile", "generic-astm", "--to", f"tcp://127.0.0.1:{lis.ports['astm-1']}",
                      "--file", str(capture), "--count", "0")
    assert acked(report) and not [e for e in report if e["event"] == "failed"]


def test_simulator_takes_pending_orders_through_the_api(lis: LisProcess) -> None:
    token = httpx.post(f"http://127.0.0.1:{lis.web_port}/api/v1/auth/token",
                       json={"username": "admin", "password": "demo"}, timeout=10).json()["access_token"]
    report = simulate("--profile", "generic-hl7", "--to", f"tcp://127.0.0.1:{lis.ports['hl7-1']}",
                      "--from-lis", f"http://127.0.0.1:{lis.web_port}", "--token", token, "--count", "2")
    pending = {row[0] for row in lis.query("SELECT barcode FROM specimen")}
    assert len(acked(report)) == 2 and all(e["specimen"] in pending for e in acked(report))


def test_listen_mode_for_an_instrument_the_lis_connects_to(tmp_path: Path) -> None:
    from tests.conftest import free_port
    from tests.drivers.e2e.lis_process import start_simulator

    port = free_port()
    sim = start_simulator("--profile", "generic-astm", "--listen", f"tcp://127.0.0.1:{port}", "--count", "3")
    lis = LisProcess(tmp_path).write([{"name": "out-1", "profile": "generic-astm", "protocol": "astm",
                                       "transport": "tcp-client", "port": port}])
    lis.seed()
    try:
        lis.start()
        out, err = sim.communicate(timeout=60)
        deadline = time.monotonic() + 15
        while lis.query("SELECT count(DISTINCT raw_message_id) FROM result")[0][0] < 3:
            assert time.monotonic() < deadline, "results were not stored"
            time.sleep(0.1)
    finally:
        lis.stop()
        if sim.poll() is None:
            sim.kill()
    events = [json.loads(line) for line in out.splitlines()]
    assert len(acked(events)) == 3, err
    assert lis.query("SELECT count(DISTINCT raw_message_id) FROM result")[0][0] == 3
