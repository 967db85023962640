"""Benchmark: result evaluation + autoverification (CLSI AUTO10) and batch validation (issue 6, "Performance").

1. Evaluation of N received patient results (default 100,000: 10,000 orders of 10 chemistry tests, half the
   patients with an earlier order so the delta check finds previous results; every test with an
   autoverification rule set and a delta rule; the real QC hold query). Target ≥ 2,000 results/s.
   Baseline in the same run: the raw cost of reading the same rows and updating their status in the same
   chunks without any evaluation (ratio = evaluation time / baseline time).
2. Batch validation of 500 results in one call, then batch release of the same 500 by another user.
   Target < 1 s on SQLite.

Usage: python bench/workflow_eval.py [--results N] [--no-pg]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import bindparam, create_engine, insert, select, text, update
from sqlmodel import SQLModel

import lis.models  # noqa: F401  (registers the tables)
from lis.db import Database
from lis.events import EventBus
from lis.models import Order, OrderTest, Patient, Result, ResultStatus, Specimen
from lis.services.catalog import import_catalog, seed_rows
from lis.services.workflow import WorkflowService, policies

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TESTS = {  # code: (unit, typical low, typical high)
    "GLU": ("mmol/L", 3.5, 9.0), "UREA": ("mmol/L", 2.0, 9.0), "CREA": ("umol/L", 45, 130),
    "ALT": ("U/L", 5, 60), "AST": ("U/L", 5, 60), "NA": ("mmol/L", 130, 148), "K": ("mmol/L", 3.2, 5.6),
    "CL": ("mmol/L", 95, 110), "CHOL": ("mmol/L", 3.0, 7.0), "TG": ("mmol/L", 0.5, 3.0),
}
CHUNK = 2000


def build(url: str, results: int) -> tuple[Database, list[int]]:
    """Schema, catalogue, rule sets, and ``results`` received patient results (bulk-inserted)."""
    db = Database.from_url(url)
    SQLModel.metadata.create_all(db.engine)
    tests, panels, ranges = seed_rows()
    with db.write() as session:
        import_catalog(session, tests, panels, ranges, actor="bench")
        for code, (_, lo, hi) in TESTS.items():
            policies.put_rule_set(session, code, "bench", av_low=lo * 0.8, av_high=hi * 1.1)
            policies.put_delta_rule(session, code, "bench", window_hours=24 * 30, pct_limit=50.0)
    rng = random.Random(6)
    n_orders = results // len(TESTS)
    n_patients = max(1, n_orders // 2)
    now = datetime.now(UTC)
    with db.engine.begin() as conn:
        conn.execute(insert(Patient.__table__), [  # type: ignore[attr-defined]
            {"name": f"Bench {i}", "name_search": f"bench {i}", "sex": "MF"[i % 2],
             "birth_date": date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60)), "phone": "",
             "address": "", "created_at": now, "updated_at": now} for i in range(n_patients)])
        first_patient = conn.execute(select(Patient.id).order_by(Patient.id).limit(1)).scalar_one()
        conn.execute(insert(Order.__table__), [  # type: ignore[attr-defined]
            {"patient_id": first_patient + i % n_patients, "filler_number": f"B{i:07d}", "created_at": now,
             "status": "in_progress", "source": "bench", "ordering_clinician": "", "department": "",
             "priority": "routine", "clinical_info": "", "cancel_reason": "", "created_by": "bench"}
            for i in range(n_orders)])
        first_order = conn.execute(select(Order.id).order_by(Order.id).limit(1)).scalar_one()
        conn.execute(insert(Specimen.__table__), [  # type: ignore[attr-defined]
            {"barcode": f"S{i:07d}", "order_id": first_order + i, "status": "received",
             "received_at": now - timedelta(hours=2), "specimen_type": "serum", "reject_reason": ""}
            for i in range(n_orders)])
        first_specimen = conn.execute(select(Specimen.id).order_by(Specimen.id).limit(1)).scalar_one()
        conn.execute(insert(OrderTest.__table__), [  # type: ignore[attr-defined]
            {"order_id": first_order + i, "specimen_id": first_specimen + i, "test_code": code,
             "status": "resulted", "added_at": now} for i in range(n_orders) for code in TESTS])
        rows = []
        for i in range(n_orders):
            received = now - timedelta(days=10) + timedelta(seconds=i * 3)  # second order of a patient is later
            for code, (unit, lo, hi) in TESTS.items():
                value = rng.uniform(lo * 0.7, hi * 1.3)
                rows.append({
                    "raw_message_id": None, "sequence": len(rows), "revision": 0, "version": 1,
                    "instrument": "bench-1", "accession": f"S{i:07d}", "specimen_id": first_specimen + i,
                    "order_test_id": None, "patient_id": first_patient + i % n_patients, "test_code": code,
                    "instrument_test_code": code, "loinc": "", "value": f"{value:.2f}", "value_numeric": value,
                    "units": unit, "reference_range": "", "abnormal_flags": "N", "result_status": "F",
                    "status": ResultStatus.RECEIVED, "is_qc": False, "received_at": received,
                    "observed_at": received, "comment": "", "updated_by": "", "unmatched_reason": "",
                    "control_material": "", "control_lot": "", "control_level": "",
                })
                if len(rows) == 20_000:
                    conn.execute(insert(Result.__table__), rows)  # type: ignore[attr-defined]
                    rows = []
        if rows:
            conn.execute(insert(Result.__table__), rows)  # type: ignore[attr-defined]
    with db.read() as session:
        ids = list(session.exec(select(Result.id).order_by(Result.id)).scalars())  # type: ignore[call-overload]
    return db, ids


def baseline(db: Database, ids: list[int]) -> float:
    """Read the same rows and update their status in the same chunks, without evaluating anything."""
    r = Result.__table__  # type: ignore[attr-defined]
    stmt = update(r).where(r.c.id == bindparam("b_id")).values(status=bindparam("b_status"),
                                                                version=r.c.version + 1)
    start = time.perf_counter()
    for i in range(0, len(ids), CHUNK):
        part = ids[i:i + CHUNK]
        with db.write(durable=False) as session:
            got = session.connection().execute(
                select(r.c.id, r.c.value, r.c.units, r.c.patient_id, r.c.specimen_id).where(r.c.id.in_(part))).all()
            session.connection().execute(stmt, [{"b_id": g.id, "b_status": ResultStatus.PENDING} for g in got])
    elapsed = time.perf_counter() - start
    with db.engine.begin() as conn:
        conn.execute(update(r).values(status=ResultStatus.RECEIVED, version=1))
    return elapsed


def run(label: str, url: str, n: int) -> None:
    print(f"{label}: building {n} received results ...", flush=True)
    db, ids = build(url, n)
    base = baseline(db, ids)
    workflow = WorkflowService(db, EventBus())
    start = time.perf_counter()
    summary = workflow.evaluate(ids)
    elapsed = time.perf_counter() - start
    assert summary.evaluated == len(ids), summary
    print(f"  evaluation + autoverification: {len(ids) / elapsed:9.0f} results/s  ({elapsed:.2f} s for {len(ids)};"
          f" {summary.autoverified} autoverified, {summary.pending} pending)")
    print(f"  baseline read + status update:  {len(ids) / base:9.0f} results/s  ({base:.2f} s); "
          f"evaluation costs {elapsed / base:.1f}x the raw row traffic  [target >= 2000/s]")
    with db.read() as session:
        pending = list(session.exec(select(Result.id).where(  # type: ignore[call-overload]
            Result.status == ResultStatus.PENDING, Result.critical.is_(False)).limit(500)).scalars())  # type: ignore[attr-defined]
    start = time.perf_counter()
    validated = workflow.batch("validate", pending, actor="tech", role="technician")
    t_validate = time.perf_counter() - start
    start = time.perf_counter()
    released = workflow.batch("release", pending, actor="doc", role="validator")
    t_release = time.perf_counter() - start
    print(f"  batch validation of {len(validated.done)} results in one call: {t_validate:.3f} s  [target < 1 s]")
    print(f"  batch release of {len(released.done)} results in one call:    {t_release:.3f} s "
          f"({len(released.skipped)} skipped)")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite (WAL)", f"sqlite:///{Path(tmp) / 'bench.db'}", args.results)
    if args.no_pg:
        return
    name = f"lis_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}")
        return
    try:
        run("PostgreSQL", PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", args.results)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
