"""The main flows in headless Chromium against a real ``lis demo`` process (issue 8 "Tests")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lis.astm_fixtures import astm_message
from tests.web.browser import (
    browser_missing,
    chrome,
    click,
    click_action,
    css,
    input_by_label,
    login,
    logout,
    page_text,
    row_status,
    wait_for,
)
from tests.web.server import CLINICIAN, DemoServer

pytestmark = [pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or ""),
              pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with DemoServer(tmp_path_factory.mktemp("web-demo")) as running:
        yield running


@pytest.fixture
def driver() -> Iterator[object]:
    with chrome() as browser:
        yield browser


_used: set[str] = set()


def fresh_specimen(server: DemoServer) -> tuple[str, list[str]]:
    """A demo order no other test has used: (barcode, its test codes)."""
    for found in server.orders(100):
        barcode = found["specimens"][0]["specimen_id"]
        if barcode not in _used and found["status"] == "ordered":
            _used.add(barcode)
            return barcode, [t["code"] for t in found["tests"]]
    raise AssertionError("no unused demo order left")


def evaluated(server: DemoServer, result_id: int, timeout: float = 8.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.result(result_id)["status"]
        if status != "received":
            return str(status)
        time.sleep(0.1)
    pytest.skip("lis serve does not evaluate results yet (the workflow is not wired in lis/cli/server.py)")


def test_result_arrives_live_is_validated_and_released(server: DemoServer, driver: object) -> None:
    barcode, tests = fresh_specimen(server)
    login(driver, server.base, "tech", "demo")
    wait_for(lambda: "Danh sách duyệt kết quả" in page_text(driver))
    time.sleep(0.5)
    sent = time.monotonic()
    outcome = server.ingest(astm_message(barcode, [(tests[0], "5.0", "")]))
    rows = wait_for(lambda: css(driver, f'tr[data-specimen="{barcode}"]'), timeout=10)
    latency = time.monotonic() - sent
    assert rows and latency < 5, latency
    result_id = server.results_of(barcode)[0]["id"]
    assert outcome["status"] == "processed"
    assert evaluated(server, result_id) == "pending"
    wait_for(lambda: row_status(driver, result_id) == "Chờ duyệt")
    click_action(driver, result_id, "validate")
    wait_for(lambda: server.result(result_id)["status"] == "technically_validated")
    wait_for(lambda: not css(driver, f'tr[data-result-id="{result_id}"]'))  # off the technician's list
    version = server.result(result_id)["version"]
    refused = server.api("POST", f"/results/{result_id}/actions", "tech",
                         json={"action": "release", "version": version})
    assert refused.status_code == 403  # two-level validation: a technician never releases
    logout(driver, server.base)
    login(driver, server.base, "doctor", "demo")
    wait_for(lambda: row_status(driver, result_id) == "Đã duyệt kỹ thuật")
    click_action(driver, result_id, "validate")
    wait_for(lambda: server.result(result_id)["status"] == "released")


def test_critical_value_needs_a_notification(server: DemoServer, driver: object) -> None:
    barcode, tests = fresh_specimen(server)
    code = next((t for t in tests if t in ("K", "GLU", "NA", "WBC", "HGB", "PLT")), tests[0])
    value = {"K": "7.9", "GLU": "31", "NA": "170", "WBC": "45", "HGB": "40", "PLT": "1500"}.get(code, "99999")
    server.ingest(astm_message(barcode, [(code, value, "")]))
    result_id = server.results_of(barcode)[0]["id"]
    evaluated(server, result_id)
    login(driver, server.base, "tech", "demo", next_path="/critical")
    wait_for(lambda: barcode in page_text(driver))
    click(driver, f'button[data-action="notify"][data-specimen="{barcode}"]')
    wait_for(lambda: input_by_label(driver, "Người nhận thông báo")).send_keys("BS. Lê Minh Tâm, khoa Nội")
    click(driver, '[data-testid="notify-save"]')
    wait_for(lambda: barcode not in page_text(driver))
    driver.get(f"{server.base}/worklist")  # type: ignore[attr-defined]
    wait_for(lambda: css(driver, f'tr[data-result-id="{result_id}"]'))
    click_action(driver, result_id, "validate")  # technical validation
    wait_for(lambda: server.result(result_id)["status"] == "technically_validated")
    logout(driver, server.base)
    login(driver, server.base, "doctor", "demo")
    wait_for(lambda: row_status(driver, result_id) == "Đã duyệt kỹ thuật")
    click_action(driver, result_id, "validate")  # release: allowed now that the notification is recorded
    wait_for(lambda: server.result(result_id)["status"] == "released")


def test_language_switch_and_dates(server: DemoServer, driver: object) -> None:
    login(driver, server.base, "admin", "demo", next_path="/audit")
    wait_for(lambda: "Nhật ký hệ thống" in page_text(driver))
    assert "/" in css(driver, "tbody tr td")[1].text  # type: ignore[attr-defined]  # DD/MM/YYYY
    click(driver, '[data-testid="switch-language"]')
    wait_for(lambda: "Audit log" in page_text(driver) and "Log out" in page_text(driver))
    assert "-" in css(driver, "tbody tr td")[1].text[:10]  # type: ignore[attr-defined]  # YYYY-MM-DD
    click(driver, '[data-testid="switch-language"]')
    wait_for(lambda: "Nhật ký hệ thống" in page_text(driver))


def test_clinician_reads_but_cannot_change(server: DemoServer, driver: object) -> None:
    barcode, tests = fresh_specimen(server)
    server.ingest(astm_message(barcode, [(tests[0], "5.0", "")]))
    login(driver, server.base, *CLINICIAN, next_path="/worklist")
    wait_for(lambda: "Danh sách duyệt kết quả" in page_text(driver))
    wait_for(lambda: css(driver, "tr[data-result-id]"))
    assert not css(driver, 'button[data-action="validate"]')
    assert "<b>user</b>" in page_text(driver)  # HTML in a name is shown as text
    driver.get(f"{server.base}/admin")  # type: ignore[attr-defined]
    wait_for(lambda: "Bạn không có quyền truy cập trang này" in page_text(driver))
    some = server.api("GET", "/results", params={"limit": 1}).json()[0]
    refused = server.api("POST", f"/results/{some['id']}/actions", *CLINICIAN,
                         json={"action": "validate", "version": some["version"]})
    assert refused.status_code == 403


def test_screens_render_without_errors(server: DemoServer, driver: object, tmp_path: Path) -> None:
    login(driver, server.base, "admin", "demo", next_path="/dashboard")
    for path, text in (("/dashboard", "Tổng quan"), ("/worklist", "Danh sách duyệt kết quả"),
                       ("/critical", "Giá trị nguy hiểm"), ("/patients", "Bệnh nhân"),
                       ("/orders", "Tạo chỉ định"), ("/qc", "Bảng nội kiểm"), ("/instruments", "Tin nhắn gốc"),
                       ("/outbox", "Hàng đợi gửi EMR"), ("/admin", "Người dùng"), ("/audit", "Nhật ký hệ thống")):
        driver.get(server.base + path)  # type: ignore[attr-defined]
        wait_for(lambda text=text: text in page_text(driver))
    assert "Traceback" not in server.log.read_text()


def _stamp(minutes_ago: float) -> str:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    return (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) - timedelta(minutes=minutes_ago)).strftime("%Y%m%d%H%M%S")


def test_qc_rejection_holds_release_until_corrective_action(server: DemoServer, driver: object) -> None:
    if server.api("GET", "/qc/status").status_code == 404:
        pytest.skip("the QC service is not installed in lis serve yet (qc.wiring.install)")
    material = server.api("POST", "/qc/materials", json={"code": "QC-WEB", "name": "Control web", "level": "1"})
    lot = server.api("POST", "/qc/lots", json={"material_id": material.json()["id"], "lot_number": "W1"})
    assert server.api("POST", "/qc/targets", json={"lot_id": lot.json()["id"], "instrument": "demo-astm",
                                                   "test_code": "CREA", "mean": "100", "sd": "5"}).status_code == 201
    assert server.api("PUT", "/qc/rule-sets", json={"instrument": "demo-astm", "test_code": "CREA",
                                                    "rejection_rules": ["1_3s", "2_2s", "R_4s"],
                                                    "warning_rules": ["1_2s"]}).is_success
    server.ingest(astm_message("QC-WEB", [("CREA", "101", "")], qc=True, stamp=_stamp(30)))
    server.ingest(astm_message("QC-WEB", [("CREA", "130", "")], qc=True, stamp=_stamp(20)))  # +6 SD: 1_3s
    barcode = f"W{int(time.time())}"  # not "QC…": the profile takes those for controls
    created = server.api("POST", "/orders", json={"patient": {"name": "Đinh Thị Lan", "sex": "F"},
                                                   "specimen_id": barcode, "tests": ["CREA"]})
    assert created.status_code == 201, created.text
    server.ingest(astm_message(barcode, [("CREA", "70", "")], stamp=_stamp(10)))
    result_id = server.results_of(barcode)[0]["id"]
    evaluated(server, result_id)
    version = server.result(result_id)["version"]
    assert server.api("POST", f"/results/{result_id}/actions", "tech",
                      json={"action": "validate", "version": version}).is_success
    login(driver, server.base, "doctor", "demo", next_path="/worklist")
    wait_for(lambda: css(driver, f'tr[data-result-id="{result_id}"] [data-flag="qc"]'))
    click_action(driver, result_id, "validate")  # release is refused: held by QC
    wait_for(lambda: "held by QC" in page_text(driver))
    assert server.result(result_id)["status"] == "technically_validated"
    driver.get(f"{server.base}/qc")  # type: ignore[attr-defined]
    click(driver, 'button[data-action="corrective"]')
    area = wait_for(lambda: css(driver, '[data-testid="corrective-text"] textarea, textarea'))
    area[0].send_keys("Hiệu chuẩn lại CREA, thay thuốc thử lô mới")  # type: ignore[index]
    click(driver, '[data-testid="corrective-save"]')
    wait_for(lambda: "Chờ lần chạy QC đạt" in page_text(driver))
    server.ingest(astm_message("QC-WEB", [("CREA", "99", "")], qc=True, stamp=_stamp(0)))  # accepted run
    driver.get(f"{server.base}/worklist")  # type: ignore[attr-defined]
    wait_for(lambda: css(driver, f'tr[data-result-id="{result_id}"]'))
    wait_for(lambda: not css(driver, f'tr[data-result-id="{result_id}"] [data-flag="qc"]'))
    click_action(driver, result_id, "validate")
    wait_for(lambda: server.result(result_id)["status"] == "released")
