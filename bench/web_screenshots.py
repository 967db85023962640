"""Screenshots of every main page for the README (docs/screenshots/*.png), from a real demo server with data.

    .venv/bin/python bench/web_screenshots.py [OUT_DIR]

Starts ``lis demo`` on free ports (see tests/web/server.py), feeds analyser results (normal, high,
critical), QC runs (one rejected) and a patient history, then logs in with headless Chromium and saves
one PNG per page. Prints the files written.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.lis.astm_fixtures import astm_message  # noqa: E402
from tests.web.browser import browser_missing, chrome, click, css, login, page_text, wait_for  # noqa: E402
from tests.web.server import DemoServer  # noqa: E402

VALUES = {"GLU": ["5.1", "9.8", "4.4"], "K": ["4.2", "7.4", "3.1"], "NA": ["140", "128", "139"],
          "WBC": ["6.5", "14.2", "3.1"], "HGB": ["135", "98", "142"], "PLT": ["250", "1100", "180"],
          "CREA": ["80", "160", "70"], "ALT": ["25", "88", "30"]}


def stamp(minutes_ago: float) -> str:
    return (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) - timedelta(minutes=minutes_ago)).strftime("%Y%m%d%H%M%S")


def feed(server: DemoServer) -> None:
    """Analyser results for most demo orders, QC history with a rejection, a patient with a trend."""
    orders = server.orders(40)
    for i, found in enumerate(orders[:24]):
        barcode = found["specimens"][0]["specimen_id"]
        rows = [(t["code"], VALUES.get(t["code"], ["5.0", "9.9", "1.0"])[i % 3 if i % 4 else 0], "")
                for t in found["tests"]]
        server.ingest(astm_message(barcode, rows, stamp=stamp(60 - i)))
    server.ingest(astm_message("UNKNOWN-77", [("GLU", "6.1", "")]))  # unmatched
    server.ingest(b"H|\\^&|||garbled\rthis is not ASTM\r")  # quarantined
    qc = server.api("GET", "/qc/status")
    if qc.status_code == 200:
        material = server.api("POST", "/qc/materials", json={"code": "QC-N", "name": "Multichem S", "level": "1"})
        lot = server.api("POST", "/qc/lots", json={"material_id": material.json()["id"], "lot_number": "L2611"})
        server.api("POST", "/qc/targets", json={"lot_id": lot.json()["id"], "instrument": "demo-astm",
                                                "test_code": "GLU", "mean": "5.5", "sd": "0.15", "tea_pct": 6.9})
        server.api("PUT", "/qc/rule-sets", json={"instrument": "demo-astm", "test_code": "GLU",
                                                 "rejection_rules": ["1_3s", "2_2s", "R_4s", "4_1s"],
                                                 "warning_rules": ["1_2s"]})
        series = ["5.48", "5.60", "5.41", "5.55", "5.70", "5.52", "5.38", "5.62", "5.76", "5.47", "5.58", "5.66",
                  "5.44", "5.81", "5.53", "6.02"]
        for n, value in enumerate(series):
            server.ingest(astm_message("QC-N", [("GLU", value, "")], qc=True, stamp=stamp(500 - n * 30)))
    patient = {"name": "Nông Thị Hoa", "national_id": "001180012345", "sex": "F", "birth_date": "1980-03-14"}
    for n, (glu, hba1c) in enumerate((("8.9", "8.1"), ("7.6", "7.4"), ("6.8", "6.9"), ("6.1", "6.4"))):
        barcode = f"HOA{n}"
        server.api("POST", "/orders", json={"patient": patient, "specimen_id": barcode, "tests": ["GLU", "HBA1C"]})
        when = stamp(60 * 24 * (40 - n * 10))
        server.ingest(astm_message(barcode, [("GLU", glu, ""), ("HBA1C", hba1c, "")], stamp=when))
        time.sleep(0.3)
        for action, user in (("validate", "tech"), ("release", "doctor")):
            server.api("POST", "/results/batch-actions", user,
                       json={"action": action, "specimen_id": barcode, "confirm_critical": True,
                             "confirm_held": True})


def shoot(server: DemoServer, out: Path) -> list[Path]:
    written: list[Path] = []
    with chrome(1440, 1000) as driver:
        def save(name: str) -> None:
            time.sleep(1.2)
            path = out / f"{name}.png"
            driver.save_screenshot(str(path))  # type: ignore[attr-defined]
            written.append(path)

        driver.get(f"{server.base}/login")  # type: ignore[attr-defined]
        wait_for(lambda: "Mật khẩu" in page_text(driver))
        save("login")
        login(driver, server.base, "doctor", "demo", next_path="/worklist")
        wait_for(lambda: css(driver, "tr[data-result-id]"))
        save("worklist")
        for path, name in (("/dashboard", "dashboard"), ("/critical", "critical"), ("/orders", "orders"),
                           ("/outbox", "outbox")):
            driver.get(server.base + path)  # type: ignore[attr-defined]
            save(name)
        driver.get(f"{server.base}/patients?q=nong thi hoa")  # type: ignore[attr-defined]
        wait_for(lambda: "Kết quả tích lũy" in page_text(driver))
        save("patients")
        driver.get(f"{server.base}/qc")  # type: ignore[attr-defined]
        click(driver, "[data-qc-status]")
        wait_for(lambda: css(driver, "[data-testid=lj-chart]"), timeout=5)
        save("qc")
        driver.get(f"{server.base}/instruments")  # type: ignore[attr-defined]
        click(driver, "tbody tr", index=-1)
        wait_for(lambda: css(driver, "[data-testid=raw-decoded]"))
        save("instruments")
        driver.delete_all_cookies()  # type: ignore[attr-defined]
        login(driver, server.base, "admin", "demo", next_path="/admin")
        wait_for(lambda: "Người dùng" in page_text(driver))
        save("admin")
        driver.get(f"{server.base}/audit")  # type: ignore[attr-defined]
        save("audit")
        click(driver, '[data-testid="switch-language"]')
        driver.get(f"{server.base}/worklist")  # type: ignore[attr-defined]
        wait_for(lambda: "Validation worklist" in page_text(driver))
        save("worklist-en")
    return written


def main() -> None:
    missing = browser_missing()
    if missing:
        print(f"skipped: {missing}")
        return
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lis-shots-") as tmp, DemoServer(Path(tmp)) as server:
        feed(server)
        for path in shoot(server, out):
            print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


if __name__ == "__main__":
    main()
