"""Benchmark of the QC service with its database (SQLite file, WAL, synchronous=FULL as in production).

1. One new two-level run of one analyte through :meth:`qc.service.QcService.process`: the QC results are
   already stored (as ingest leaves them); the timing covers resolving material/lot/target, grouping, the
   Westgard engine with the stored history, writing membership, decision, violations, holds and the audit
   event, and the commit (fsync). Both levels arrive in one call (an analyser sending both in one message);
   median and p95 over 300 runs after 30 warm-up runs.
2. The same with the history cache dropped before each run (another process decided the previous run, or
   a restart): the history is rebuilt from the tables.
3. ``lis.services.qc_holds.held_results`` for a batch of 500 patient results (the release workflow's query).

The pure engine (``qc.rules.evaluate_new_run``) is measured in bench/qc_rules.py (target < 1 ms).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import SQLModel

import lis.models  # noqa: F401  (registers the tables)
from lis.db import Database
from lis.events import EventBus
from lis.models import Result, utcnow
from lis.services.qc_holds import held_results
from qc import setup
from qc.model import QcObservation
from qc.rules import QcHistory, evaluate_new_run
from qc.service import QcService

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEVELS = {"QC-1": (Decimal("5.0"), Decimal("0.2")), "QC-2": (Decimal("15.0"), Decimal("0.5"))}
WARMUP, RUNS = 30, 300


def _configure(db: Database) -> None:
    with db.write() as session:
        for code, (mean, sd) in LEVELS.items():
            material = setup.create_material(session, "bench", code=code, name=code)
            lot = setup.create_lot(session, "bench", material_id=material.id or 0, lot_number="L1")
            setup.create_target(session, "bench", lot_id=lot.id or 0, instrument="xn-1", test_code="GLU",
                                mean=mean, sd=sd)


def _store_run(db: Database, i: int, rng: random.Random) -> list[int]:
    at = T0 + timedelta(hours=i)
    rows = []
    for seq, (code, (mean, sd)) in enumerate(LEVELS.items()):
        value = mean + sd * Decimal(str(round(rng.gauss(0, 1), 2)))
        rows.append({"instrument": "xn-1", "test_code": "GLU", "accession": code, "control_material": code,
                     "value": str(value), "is_qc": True, "observed_at": at, "received_at": utcnow(),
                     "sequence": i * 10 + seq, "revision": 0, "version": 1, "status": "received"})
    with db.write() as session:
        conn = session.connection()
        conn.execute(insert(Result.__table__), rows)
        ids = [r for (r,) in conn.exec_driver_sql(
            "SELECT id FROM result ORDER BY id DESC LIMIT 2").all()]
    return sorted(ids)


def _time_runs(db: Database, service: QcService, start: int, drop_cache: bool) -> list[float]:
    rng = random.Random(start)
    times = []
    for i in range(start, start + WARMUP + RUNS):
        ids = _store_run(db, i, rng)
        if drop_cache:
            service._histories.clear()
        t = time.perf_counter()
        service.process(ids)
        if i >= start + WARMUP:
            times.append((time.perf_counter() - t) * 1000)
    return times


def _report(label: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[int(len(times) * 0.95) - 1]
    print(f"{label:<58} median {statistics.median(times):6.2f} ms   p95 {p95:6.2f} ms")


def _pure_engine() -> float:
    history = QcHistory("GLU")
    times = []
    for i in range(WARMUP + RUNS):
        run = [QcObservation(str(i), code, "L1", mean, mean, sd, "GLU", i * 2 + k)
               for k, (code, (mean, sd)) in enumerate(LEVELS.items())]
        t = time.perf_counter()
        _, history = evaluate_new_run(history, run)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times[WARMUP:])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.from_url(f"sqlite:///{Path(tmp) / 'bench.db'}")
        SQLModel.metadata.create_all(db.engine)
        _configure(db)
        service = QcService(db, EventBus())
        print(f"QC service on SQLite (WAL, synchronous=FULL), one 2-level run of one analyte, {RUNS} runs:")
        _report("process(): history in memory (the usual case)", _time_runs(db, service, 0, False))
        _report("process(): history rebuilt from the tables each run", _time_runs(db, service, 10_000, True))
        print(f"{'pure engine evaluate_new_run (no database), for comparison':<58} median {_pure_engine():6.3f} ms")
        now = utcnow()
        with db.write() as session:
            session.connection().execute(insert(Result.__table__), [
                {"instrument": "xn-1", "test_code": "GLU", "accession": f"P{i}", "value": "5", "is_qc": False,
                 "observed_at": T0 + timedelta(minutes=i), "received_at": now, "sequence": 10**6 + i,
                 "revision": 0, "version": 1, "status": "received"} for i in range(500)])
            ids = [r for (r,) in session.connection().exec_driver_sql(
                "SELECT id FROM result WHERE NOT is_qc ORDER BY id").all()]
        times = []
        for _ in range(50):
            with db.read() as session:
                t = time.perf_counter()
                held_results(session, ids)
                times.append((time.perf_counter() - t) * 1000)
        _report("held_results() for 500 patient results", times)
        db.dispose()


if __name__ == "__main__":
    main()
