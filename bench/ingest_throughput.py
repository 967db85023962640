"""Benchmark: durable ingest of 20-result ASTM messages (issue: foundation, "Performance").

Measures messages/s and results/s for ``IngestService.ingest`` (journal commit, then parse, match and
store in a second commit) on SQLite (WAL, synchronous=FULL) and PostgreSQL, with one producer and with
10 concurrent producers. Baseline, in the same run: the cost floor of durability alone — one raw
``INSERT`` + ``COMMIT`` per message with the stdlib sqlite3 module (resp. psycopg) on the same settings.

Usage: python bench/ingest_throughput.py [--messages N] [--no-pg]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.wiring import register_parsers
from lis.config import Config, InstrumentConfig
from lis.context import LisContext
from lis.db import Database
from lis.migrate import upgrade
from lis.services.catalog import import_catalog, seed_rows
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData

CODES = ["WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "RDW", "PLT", "MPV", "NEUT%", "LYMPH%", "MONO%",
         "EO%", "BASO%", "NEUT#", "LYMPH#", "MONO#", "EO#", "BASO#"]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def message(i: int) -> bytes:
    specimen = f"B{i % 500:05d}"
    records = ["H|\\^&|||XN-550^00-22^12345||||||||E1394-97", "P|1", f"O|1|{specimen}||^^^CBC|R|{i}|||||N"]
    records += [f"R|{n}|^^^{code}|{4.5 + n / 10 + i % 7:.2f}|10*3/uL|1.0-9.9|N||F||||20261126083000"
                for n, code in enumerate(CODES, start=1)]
    records.append("L|1|N")
    return ("\r".join(records) + "\r").encode()


def make_ctx(url: str, tmp: Path) -> LisContext:
    db = Database.from_url(url, pool_size=12)
    upgrade(db)
    config = Config(data_dir=tmp, database={"url": url}, instruments=[InstrumentConfig(
        name="xn-1", profile="generic-astm", protocol="astm", port=15001)])
    ctx = LisContext(config, db)
    register_parsers(ctx.parsers)
    tests, panels, ranges = seed_rows()
    with db.write() as session:
        import_catalog(session, tests, panels, ranges, actor="bench")
    catalog = ctx.catalog.get()
    with db.write() as session:
        for n in range(500):
            create_order(session, catalog, OrderRequest(patient=PatientData(name=f"Bench {n}"),
                                                        specimen_id=f"B{n:05d}", tests=["CBC"]), "bench")
    return ctx


def run_ingest(ctx: LisContext, total: int, producers: int) -> float:
    per = total // producers
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(per):
                ctx.ingest.ingest("xn-1", message(offset + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p * 1_000_000 + int(time.time()),)) for p in range(producers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return per * producers / elapsed


def run_link_path(ctx: LisContext, total: int, batch: int = 50) -> float:
    """What the analyser links do: journal each message durably (its ACK waits for that), then process
    what queued up in batches (``process_many``: one transaction per batch)."""
    start = time.perf_counter()
    pending: list[int] = []
    for i in range(total):
        pending.append(ctx.ingest.journal("xn-1", message(2_000_000 + int(start) + i)))
        if len(pending) == batch:
            ctx.ingest.process_many(pending)
            pending = []
    ctx.ingest.process_many(pending)
    return total / (time.perf_counter() - start)


def sqlite_floor(path: Path, total: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS j (id INTEGER PRIMARY KEY, data BLOB)")
    data = message(1)
    start = time.perf_counter()
    for _ in range(total):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO j (data) VALUES (?)", (data,))
        conn.execute("COMMIT")
    return total / (time.perf_counter() - start)


def pg_floor(url: str, total: int) -> float:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_j (id serial PRIMARY KEY, data bytea)")
        conn.commit()
        data = message(1)
        start = time.perf_counter()
        for _ in range(total):
            conn.execute("INSERT INTO bench_j (data) VALUES (%s)", (data,))
            conn.commit()
        return total / (time.perf_counter() - start)


def report(label: str, rate: float, floor: float) -> None:
    print(f"  {label:<28} {rate:8.0f} msg/s  {rate * 20:9.0f} results/s  "
          f"(durable-commit floor {floor:6.0f} msg/s, ratio {rate / floor:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"ingest of 20-result ASTM messages, {args.messages} messages per run")
        ctx = make_ctx(f"sqlite:///{tmp / 'bench.db'}", tmp)
        floor = sqlite_floor(tmp / "floor.db", args.messages)
        print("SQLite (WAL, synchronous=FULL):")
        report("1 producer", run_ingest(ctx, args.messages, 1), floor)
        report("10 concurrent producers", run_ingest(ctx, args.messages, 10), floor)
        report("journal each, process in 50s", run_link_path(ctx, args.messages), floor)
        if not args.no_pg:
            import uuid

            from sqlalchemy import create_engine, text

            name = f"lis_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:
                print(f"PostgreSQL skipped: {type(exc).__name__}")
                return
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            try:
                pg_ctx = make_ctx(url, tmp)
                floor = pg_floor(url, args.messages)
                print("PostgreSQL:")
                report("1 producer", run_ingest(pg_ctx, args.messages, 1), floor)
                report("10 concurrent producers", run_ingest(pg_ctx, args.messages, 10), floor)
                report("journal each, process in 50s", run_link_path(pg_ctx, args.messages), floor)
                pg_ctx.db.dispose()
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
