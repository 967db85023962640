"""Web worklist benchmark (issue 8 "Performance"), in headless Chromium against a real server.

    .venv/bin/python bench/web_worklist.py [--results 10000]

1. first meaningful paint of /worklist with N pending results (target < 1.5 s): from navigation start to
   the first result row in the DOM (the page's 100 rows come with the HTML), median of 5 loads;
2. validating a batch of 100 (target < 1 s): select the page (100 rows), click "validate selected", until
   the outcome is on screen ("100 validated"), and until the list is redrawn; median of 3 batches;
3. live update (target < 1 s): an analyser message is posted (HTTP 202 = the LIS acknowledged it) and the
   time until its row is on the open worklist; median and max of 5.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lis.context import LisContext  # noqa: E402
from lis.services.orders import OrderRequest, create_order  # noqa: E402
from lis.services.patients import PatientData  # noqa: E402
from tests.lis.astm_fixtures import astm_message  # noqa: E402
from tests.web.browser import browser_missing, chrome, click, css, login, page_text, wait_for  # noqa: E402
from tests.web.server import DemoServer  # noqa: E402

TESTS = ["GLU", "UREA", "CREA", "ALT", "AST", "NA", "K", "CL", "CHOL", "TG"]
NORMAL = {"GLU": "5.2", "UREA": "5.0", "CREA": "80", "ALT": "25", "AST": "22", "NA": "140", "K": "4.2", "CL": "102",
          "CHOL": "4.6", "TG": "1.2"}


def seeder(results: int) -> object:
    def seed(ctx: LisContext) -> None:
        started = time.perf_counter()
        orders = results // len(TESTS)
        catalog = ctx.catalog.get()
        with ctx.db.write() as session:
            for i in range(orders):
                create_order(session, catalog, OrderRequest(
                    patient=PatientData(name=f"Bệnh nhân {i:05d}", national_id=f"0791900{i:05d}", sex="M"),
                    specimen_id=f"B{i:06d}", tests=TESTS, source="manual"), "bench")
            for i in range(5):
                create_order(session, catalog, OrderRequest(
                    patient=PatientData(name=f"Cấp cứu {i}", national_id=f"0792900{i:05d}", sex="F"),
                    specimen_id=f"LIVE{i}", tests=["GLU"], priority="stat", source="manual"), "bench")
        ids: list[int] = []
        for i in range(orders):
            message = astm_message(f"B{i:06d}", [(code, NORMAL[code], "") for code in TESTS])
            ids += ctx.ingest.ingest("demo-astm", message).result_ids
        ctx.workflow.evaluate(ids)
        print(f"seeded {len(ids)} pending results in {time.perf_counter() - started:.1f} s")

    return seed


def first_paint(driver: object, base: str) -> float:
    start = time.perf_counter()
    driver.get(f"{base}/worklist")  # type: ignore[attr-defined]
    wait_for(lambda: css(driver, "tr[data-result-id]"), timeout=30, interval=0.005)
    return time.perf_counter() - start


def batch_validate(driver: object, base: str) -> tuple[float, float]:
    driver.get(f"{base}/worklist")  # type: ignore[attr-defined]
    wait_for(lambda: css(driver, "tr[data-result-id]"), timeout=30)
    before = page_text(driver)
    click(driver, "thead .q-checkbox")  # select the whole page (100 rows)
    wait_for(lambda: len(css(driver, "tbody input.wl-check:checked")) >= 100)
    start = time.perf_counter()
    click(driver, '[data-testid="validate-selected"]')
    wait_for(lambda: any("Đã duyệt 100 kết quả" in n.text for n in css(driver, ".q-notification__message")),
             timeout=30, interval=0.005)
    confirmed = time.perf_counter() - start
    wait_for(lambda: not css(driver, "tbody input.wl-check:checked") and before != page_text(driver), timeout=30,
             interval=0.005)
    return confirmed, time.perf_counter() - start


def live_update(driver: object, server: DemoServer, barcode: str) -> float:
    message = astm_message(barcode, [("GLU", "5.4", "")])
    outcome = server.ingest(message)  # returns once the LIS has journaled and processed it (the ACK)
    acked = time.perf_counter()
    assert outcome["status"] == "processed", outcome
    wait_for(lambda: css(driver, f'tr[data-specimen="{barcode}"]'), timeout=30, interval=0.005)
    return time.perf_counter() - acked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(f"skipped: {missing}")
        return
    with tempfile.TemporaryDirectory(prefix="lis-bench-web-") as tmp, \
            DemoServer(Path(tmp), seed=seeder(args.results)) as server, \
            chrome(1440, 1000, page_load="eager") as driver:
        print(f"server: {server.mode} on {server.base}")
        login(driver, server.base, "tech", "demo", next_path="/dashboard")
        pending = wait_for(lambda: css(driver, '[data-testid="pending-count"]'))[0].text  # type: ignore[index]
        print(f"pending results on the dashboard: {pending}")
        first_paint(driver, server.base)  # warm-up (NiceGUI static files cached, as in daily use)
        paints = [first_paint(driver, server.base) for _ in range(5)]
        print(f"first meaningful paint, {pending} pending: median {statistics.median(paints) * 1000:.0f} ms, "
              f"max {max(paints) * 1000:.0f} ms (target < 1500 ms)")
        batches = [batch_validate(driver, server.base) for _ in range(3)]
        confirmed = [c for c, _ in batches]
        redrawn = [r for _, r in batches]
        print(f"validate a batch of 100: confirmed on screen median {statistics.median(confirmed) * 1000:.0f} ms, "
              f"max {max(confirmed) * 1000:.0f} ms (target < 1000 ms); worklist redrawn with the next 100 "
              f"median {statistics.median(redrawn) * 1000:.0f} ms")
        driver.get(f"{server.base}/worklist")  # type: ignore[attr-defined]
        wait_for(lambda: css(driver, "tr[data-result-id]"), timeout=30)
        time.sleep(0.5)
        lives = []
        for i in range(5):
            lives.append(live_update(driver, server, f"LIVE{i}"))
            time.sleep(0.3)
        print(f"new result on the open worklist after the LIS acknowledged it: median "
              f"{statistics.median(lives) * 1000:.0f} ms, max {max(lives) * 1000:.0f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()
