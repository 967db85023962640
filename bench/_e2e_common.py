"""Shared set-up of the end-to-end benchmarks: a LIS with N analyser links in this process, senders in another.

The LIS side (journal group commit, ACK, background processing) runs in the benchmark process; the simulated
analysers run in a child process (``--role sender``) so they do not share the interpreter lock with the LIS.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import SQLModel, func, select

import lis.models  # noqa: F401
from drivers.astm.session import AstmSession
from drivers.hl7.session import Hl7Session
from drivers.profile import get_profile
from drivers.transports.instrument import InstrumentChannel, InstrumentLink
from drivers.transports.journal import GroupJournal
from drivers.wiring import open_journal, register_parsers
from lis.config import Config, InstrumentConfig
from lis.context import LisContext
from lis.db import Database
from lis.models import RawMessage, Result
from lis.services.catalog import import_catalog, seed_rows
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData

CBC = ["WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "RDW", "PLT", "MPV", "NEUT%", "LYMPH%", "MONO%",
       "EO%", "BASO%", "NEUT#", "LYMPH#", "MONO#", "EO#", "BASO#"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_lis(instruments: list[InstrumentConfig], specimens: int) -> LisContext:
    tmp = Path(tempfile.mkdtemp(prefix="lis-bench-"))
    url = f"sqlite:///{tmp / 'lis.db'}"
    db = Database.from_url(url)
    SQLModel.metadata.create_all(db.engine)
    ctx = LisContext(Config(data_dir=tmp, database={"url": url}, instruments=instruments), db)
    register_parsers(ctx.parsers)
    tests, panels, ranges = seed_rows()
    with db.write() as session:
        import_catalog(session, tests, panels, ranges, actor="bench")
    catalog = ctx.catalog.get()
    with db.write() as session:
        for n in range(specimens):
            create_order(session, catalog, OrderRequest(patient=PatientData(name=f"Bench {n}"),
                                                        specimen_id=f"B{n:06d}", tests=["CBC"]), "bench")
    return ctx


async def start_links(ctx: LisContext) -> tuple[list[InstrumentLink], GroupJournal]:
    """The links as ``lis serve`` runs them: journal spool in the data directory, an ingest worker process."""
    journal = open_journal(ctx)
    await journal.start()
    links = []
    for inst in ctx.config.instruments:
        channel = InstrumentChannel(inst, get_profile(inst.profile), ctx.ingest, journal, ctx.status, ctx.db)
        link = InstrumentLink(channel, AstmSession if inst.protocol == "astm" else Hl7Session)
        await link.start()
        links.append(link)
    return links, journal


def counts(ctx: LisContext) -> tuple[int, int]:
    with ctx.db.read() as session:
        results = session.exec(select(func.count()).select_from(Result)).one()
        pending = session.exec(select(func.count()).select_from(RawMessage)
                               .where(RawMessage.status == "received")).one()
    return int(results), int(pending)


def pending_count(ctx: LisContext) -> int:
    with ctx.db.read() as session:
        return int(session.exec(select(func.count()).select_from(RawMessage)
                                .where(RawMessage.status == "received")).one())


async def wait_processed(ctx: LisContext, expected_results: int, timeout: float = 600) -> float:
    """Wait until every journaled message is processed; return the wall-clock time it happened, after checking
    that every expected result is stored. (Polls the small index of unprocessed messages, not COUNT(*) of the
    result table, which grows and would itself load the process being measured.)"""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if await asyncio.to_thread(pending_count, ctx) == 0:
            done = time.time()
            results, _pending = counts(ctx)
            if results >= expected_results:
                return done
        await asyncio.sleep(0.02)
    raise TimeoutError(f"only {counts(ctx)} of {expected_results} results stored")


def run_sender(script: Path, args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), "--role", "sender", *args], stdout=subprocess.PIPE,
                            text=True)


def sender_report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"sender failed ({proc.returncode})")
    return dict(json.loads(out.strip().splitlines()[-1]))


def summary(latencies: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {"p50_ms": round(percentile(ms, 0.5), 3), "p99_ms": round(percentile(ms, 0.99), 3),
            "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan")}


def commit_floor_ms(samples: int = 50) -> float:
    """Median time of one tiny durable SQLite commit (WAL, synchronous=FULL) on this disk, now: the floor
    under any journal-before-ACK latency."""
    import sqlite3

    path = Path(tempfile.mkdtemp(prefix="lis-fsync-")) / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (x BLOB)")
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 1500,))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - start)
    conn.close()
    return round(statistics.median(times) * 1000, 2)
