"""Benchmark: release → AA latency at a steady release rate (issue 7 "Performance": p95 < 500 ms at 20/s).

Each release is the real workflow path: ``WorkflowService.batch("release", ...)`` of one order's 5 results, with
:func:`interfaces.outbox.enqueue_release` as the in-transaction hook and the worker woken by ``ResultReleased``;
the ORU^R01 is built (:func:`interfaces.hl7_oru.build_oru`: fast path, each message shape validated once by
hl7apy; ``bench/oru_build.py`` compares the two builders), sent over MLLP and acknowledged by a python-hl7 server.
Latency = from the start of the release call to the moment the EMR has sent its AA. Baseline in the same run: the
bare MLLP round trip of the same messages (send, AA) without the LIS.

Usage: python bench/emr_latency.py [--rate 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import col, select

from bench.emr_common import LoopThread, bulk_orders, make_ctx, percentile, pg_database
from interfaces import outbox
from interfaces.mllp_client import MllpTransport
from interfaces.wiring import build_worker
from interfaces.worker import OutboxSettings
from lis.config import EmrConfig
from lis.events import ResultReleased
from lis.models import OrderTest, OutboxMessage, Result, ResultStatus
from tests.conftest import free_port
from tests.interfaces.helpers import FakeEmr


class TimedEmr(FakeEmr):
    """Records when each AA was sent (after the write)."""

    def __init__(self) -> None:
        super().__init__("AA")
        self.acked_at: dict[str, float] = {}

    async def _client(self, reader, writer) -> None:  # type: ignore[no-untyped-def]
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                cid = str(message.segment("MSH")(10))
                writer.writemessage(message.create_ack("AA"))
                await writer.drain()
                self.acked_at.setdefault(cid, time.perf_counter())
                self.received.append(cid)
        except Exception:
            pass
        finally:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--processes", type=int, default=None,
                        help="payload-building processes (0: a thread; default: 2 on PostgreSQL, 0 on SQLite)")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, (pg_database() if args.pg else nullcontext(None)) as url:
        emr_config = EmrConfig(name="his", kind="hl7-mllp", port=port, timeout_seconds=10)
        ctx = make_ctx(Path(tmp), [emr_config], url)
        order_ids = bulk_orders(ctx, count, status=ResultStatus.TECHNICALLY_VALIDATED)
        with ctx.db.read() as session:
            results: dict[int, list[tuple[int, int]]] = {}
            for rid, version, oid in session.exec(
                    select(Result.id, Result.version, OrderTest.order_id)
                    .join(OrderTest, col(Result.order_test_id) == OrderTest.id)):
                results.setdefault(oid, []).append((rid, version))
        outbox.configure(ctx.config.emr, sign_reports=False)
        ctx.workflow.add_release_hook(outbox.enqueue_release)
        peers, runner = LoopThread(), LoopThread()
        emr = TimedEmr()
        peers.run(emr.start(port))
        settings = OutboxSettings(lanes=4, idle_poll=1.0, prepare_processes=args.processes)
        worker = build_worker(ctx.db, ctx.config, settings=settings)
        ctx.bus.subscribe(ResultReleased, worker.wake)
        runner.run(worker.start())

        started: dict[int, float] = {}
        interval = 1.0 / args.rate
        t0 = time.perf_counter()
        for n, oid in enumerate(order_ids):
            target = t0 + n * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            started[oid] = time.perf_counter()
            ids = [rid for rid, _ in results[oid]]
            versions = dict(results[oid])
            ctx.workflow.batch("release", ids, actor="doc", role="validator", versions=versions)
        release_span = time.perf_counter() - t0
        deadline = time.perf_counter() + 120
        while len(emr.acked_at) < count and time.perf_counter() < deadline:
            time.sleep(0.05)
        runner.run(worker.stop())
        with ctx.db.read() as session:
            by_order = {o: m for o, m in session.exec(select(OutboxMessage.order_id, OutboxMessage.message_id))}
        latencies = [(emr.acked_at[by_order[o]] - started[o]) * 1000 for o in order_ids
                     if by_order.get(o) in emr.acked_at]

        payloads = []
        with ctx.db.read() as session:
            payloads = [(p, m) for p, m in session.exec(select(OutboxMessage.payload, OutboxMessage.message_id))]

        async def raw() -> list[float]:
            transport = MllpTransport("127.0.0.1", port, timeout=10)
            out = []
            for payload, mid in payloads:
                t = time.perf_counter()
                outcome = await transport.send(payload, mid)
                out.append((time.perf_counter() - t) * 1000)
                assert outcome.kind == "delivered"
            await transport.close()
            return out

        baseline = peers.run(raw())
        peers.run(emr.stop())
        peers.close()
        runner.close()
    achieved = count / release_span
    p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
    b50, b95 = percentile(baseline, 50), percentile(baseline, 95)
    backend = "PostgreSQL" if args.pg else "SQLite"
    built = settings.prepare_processes if settings.prepare_processes is not None else ("2" if args.pg else "0")
    print(f"[{backend}, payload-building processes: {built} (0 = a thread)] "
          f"releases: {count} orders x 5 results at {achieved:.1f}/s (asked {args.rate:g}/s); "
          f"delivered {len(latencies)}/{count}")
    print(f"release -> AA latency: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, max {max(latencies):.0f} ms "
          f"(target p95 < 500 ms: {'OK' if p95 < 500 else 'MISSED'})")
    print(f"baseline bare MLLP send -> AA: p50 {b50:.2f} ms, p95 {b95:.2f} ms; p95 ratio LIS/bare = {p95 / b95:.0f}x")
    tenth = max(1, len(latencies) // 10)
    print("p95 by tenth of the run (ms): " + " ".join(f"{percentile(latencies[i:i + tenth], 95):.0f}"
                                                       for i in range(0, len(latencies), tenth)))


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
