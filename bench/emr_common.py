"""Shared set-up of the EMR benchmarks: a SQLite LIS with released reports queued in the outbox, fake peers.

Not a benchmark itself; ``bench/emr_latency.py`` and ``bench/emr_drain.py`` use it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import SQLModel, select

import lis.models  # noqa: F401  (registers the tables)
from interfaces.outbox import Destination, enqueue
from lis.config import Config, EmrConfig
from lis.context import LisContext
from lis.db import Database
from lis.models import Order, OrderTest, OutboxMessage, Patient, Result, ResultStatus, Specimen, User
from lis.services.catalog import import_catalog, seed_rows

TESTS = ("GLU", "CREA", "NA", "K", "UREA")
VALUES = {"GLU": ("5.6", "mmol/L", "3.9-6.4"), "CREA": ("88", "umol/L", "62-106"), "NA": ("139", "mmol/L", "135-145"),
          "K": ("4.1", "mmol/L", "3.5-5.1"), "UREA": ("5.0", "mmol/L", "2.5-7.5")}


PG_ADMIN = os.environ.get("LIS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def pg_database() -> Iterator[str]:
    """A throw-away PostgreSQL database (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    name = f"lis_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def make_ctx(tmp: Path, emr: list[EmrConfig], url: str | None = None) -> LisContext:
    url = url or f"sqlite:///{tmp / 'lis.db'}"
    db = Database.from_url(url)
    SQLModel.metadata.create_all(db.engine)
    ctx = LisContext(Config(data_dir=tmp, database={"url": url}, emr=emr), db)
    tests, panels, ranges = seed_rows()
    with db.write() as session:
        import_catalog(session, tests, panels, ranges, actor="bench")
        session.add(User(username="doc", full_name="BS. Trần Văn Hùng", role="validator", password_hash="x"))
        session.add(User(username="tech", full_name="KTV Mai", role="technician", password_hash="x"))
    return ctx


def bulk_orders(ctx: LisContext, count: int, *, patients: int = 500, status: str = ResultStatus.RELEASED,
                dests: list[Destination] | None = None, start: int = 0) -> list[int]:
    """``count`` orders of the 5 TESTS with results in ``status``; queued to ``dests`` when released."""
    catalog = ctx.catalog.get()
    now = datetime.now(UTC)
    order_ids: list[int] = []
    with ctx.db.write() as session:
        known = {p.national_id: p.id for p in session.exec(select(Patient)).all()}
        for p in range(patients):
            cccd = f"0790{p:08d}"
            if cccd not in known:
                patient = Patient(name=f"Nguyễn Văn Bệnh Nhân {p}", name_search=f"nguyen van benh nhan {p}",
                                  national_id=cccd, sex="M")
                session.add(patient)
                session.flush()
                known[cccd] = patient.id
    for chunk in range(start, start + count, 250):
        with ctx.db.write() as session:
            released: list[Result] = []
            for i in range(chunk, min(chunk + 250, start + count)):
                pid = known[f"0790{i % patients:08d}"]
                order = Order(patient_id=pid, filler_number=f"B{i:08d}", placer_number=f"P{i:08d}")
                session.add(order)
                session.flush()
                spec = Specimen(barcode=f"S{i:08d}", order_id=order.id or 0, collected_at=now)
                session.add(spec)
                session.flush()
                for code in TESTS:
                    ot = OrderTest(order_id=order.id or 0, specimen_id=spec.id, test_code=code)
                    session.add(ot)
                    session.flush()
                    value, unit, rng = VALUES[code]
                    r = Result(accession=spec.barcode, specimen_id=spec.id, order_test_id=ot.id, patient_id=pid,
                               test_code=code, loinc=catalog.by_code[code].loinc, value=value,
                               value_numeric=float(value), units=unit, reference_range=rng, result_status="F",
                               status=status, observed_at=now, validated_by="tech",
                               released_by="doc" if status == ResultStatus.RELEASED else "",
                               released_at=now if status == ResultStatus.RELEASED else None)
                    session.add(r)
                    released.append(r)
                order_ids.append(order.id or 0)
            session.flush()
            if dests and status == ResultStatus.RELEASED:
                enqueue(session, released, False, dests)
    return order_ids


def _prepare_range(url: str, data_dir: str, emr: list[dict[str, Any]], ids: list[int]) -> int:
    from interfaces.wiring import build_preparer

    config = Config(data_dir=Path(data_dir), database={"url": url}, emr=[EmrConfig(**e) for e in emr])
    preparer = build_preparer(Database.from_url(url), config)
    for row_id in ids:
        preparer.prepare(row_id)
    return len(ids)


def prepare_all(ctx: LisContext, processes: int = 2) -> int:
    """Build every pending payload (set-up only; the worker does the same while an EMR is down)."""
    with ctx.db.read() as session:
        ids = [i for i in session.exec(select(OutboxMessage.id).where(OutboxMessage.payload.is_(None))) if i]
    url = ctx.db.engine.url.render_as_string(hide_password=False)
    emr = [e.model_dump() for e in ctx.config.emr]
    parts = [ids[k::processes] for k in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(_prepare_range, [url] * processes, [str(ctx.config.data_dir)] * processes,
                            [emr] * processes, parts))


class LoopThread:
    """An asyncio loop in a daemon thread (peers and the worker run beside the caller)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 600) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]
