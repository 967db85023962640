"""Benchmark: outbox drain rate after an EMR outage (issue 7 "Performance").

5,000 reports (5 analytes each) are released while the EMR is down, their payloads are built (as the worker
does during an outage), then the EMR comes back and the outbox drains: messages/s until every row is delivered
(target >= 200/s over MLLP, >= 50/s FHIR Bundles). Baseline in the same run: the same payloads sent straight
through the transports (no database, no outbox) with the same number of connections.

Peers: a python-hl7 asyncio MLLP server answering AA; a minimal FHIR stub answering transaction-response
(the LIS side's capacity); optionally sekmet-fhir (a real FHIR server, much slower per Bundle).

Usage: python bench/emr_drain.py [--messages 5000] [--fhir-messages 2000] [--sekmet 200] [--lanes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import func, select

from bench.emr_common import LoopThread, bulk_orders, make_ctx, prepare_all
from interfaces.fhir_client import FhirTransport
from interfaces.mllp_client import MllpTransport
from interfaces.outbox import Destination
from interfaces.wiring import build_worker
from interfaces.worker import OutboxSettings
from lis.config import EmrConfig
from lis.models import OutboxMessage
from tests.conftest import free_port
from tests.interfaces.helpers import FakeEmr


async def fhir_stub(port: int) -> asyncio.base_events.Server:
    """HTTP/1.1 keep-alive server answering any POST with a transaction-response Bundle (200)."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                body = json.loads(await reader.readexactly(length))
                entries = [{"response": {"status": "201 Created"}} for _ in body.get("entry", [])]
                out = json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: "
                             + str(len(out)).encode() + b"\r\n\r\n" + out.encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, "127.0.0.1", port)


def drain(ctx, lanes: int, timeout: float = 900) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    worker = build_worker(ctx.db, ctx.config, settings=OutboxSettings(lanes=lanes, idle_poll=0.5, batch=500,
                                                                      prepare_processes=0))
    loop = LoopThread()
    start = time.perf_counter()
    loop.run(worker.start())
    total = 0
    while time.perf_counter() - start < timeout:
        with ctx.db.read() as session:
            pending = session.exec(select(func.count()).select_from(OutboxMessage)
                                   .where(OutboxMessage.status == "pending")).one()
            total = session.exec(select(func.count()).select_from(OutboxMessage)).one()
        if pending == 0:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    loop.run(worker.stop())
    loop.close()
    with ctx.db.read() as session:
        dead = session.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "dead")).one()
    if dead:
        print(f"  WARNING: {dead} dead letters")
    return elapsed, total


def payloads(ctx) -> list[tuple[bytes, str]]:  # type: ignore[no-untyped-def]
    with ctx.db.read() as session:
        return [(p, m) for p, m in session.exec(select(OutboxMessage.payload, OutboxMessage.message_id)
                                                 .order_by(OutboxMessage.id))]


async def raw_send(make, items: list[tuple[bytes, str]], lanes: int) -> float:  # type: ignore[no-untyped-def]
    queue = list(reversed(items))
    transports = [make() for _ in range(lanes)]

    async def lane(t) -> None:  # type: ignore[no-untyped-def]
        while queue:
            payload, mid = queue.pop()
            outcome = await t.send(payload, mid)
            assert outcome.kind == "delivered", outcome

    start = time.perf_counter()
    await asyncio.gather(*(lane(t) for t in transports))
    elapsed = time.perf_counter() - start
    for t in transports:
        await t.close()
    return elapsed


def scenario(name: str, emr: EmrConfig, count: int, lanes: int, peer_start, make_transport) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_ctx(Path(tmp), [emr])
        t0 = time.perf_counter()
        bulk_orders(ctx, count, dests=[Destination(emr.name, emr.kind)])
        t1 = time.perf_counter()
        prepare_all(ctx)
        t2 = time.perf_counter()
        print(f"{name}: {count} reports queued in {t1 - t0:.1f} s; payloads built in {t2 - t1:.1f} s "
              f"({count / (t2 - t1):.0f}/s on 2 processes) while the EMR is down")
        peers = LoopThread()
        server = peers.run(peer_start())
        elapsed, total = drain(ctx, lanes)
        rate = total / elapsed
        items = payloads(ctx)
        base = peers.run(raw_send(make_transport, items, lanes))
        base_rate = len(items) / base
        server.close()
        peers.close()
        print(f"{name}: drain {total} messages in {elapsed:.2f} s = {rate:.0f} msg/s "
              f"(baseline, transports only: {base_rate:.0f} msg/s; outbox/baseline = {rate / base_rate:.2f})")


def sekmet_server(port: int, workdir: Path) -> subprocess.Popen[bytes] | None:
    exe = Path(sys.executable).with_name("sekmet")
    if not exe.exists() and not shutil.which("sekmet"):
        return None
    import os

    import httpx

    env = {**os.environ, "SEKMET_DB": str(workdir / "s.db"), "SEKMET_BASE_URL": f"http://127.0.0.1:{port}/fhir"}
    proc = subprocess.Popen([str(exe) if exe.exists() else "sekmet", "serve", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--fhir-messages", type=int, default=2000)
    parser.add_argument("--sekmet", type=int, default=200, help="Bundles for the sekmet-fhir run (0: skip)")
    parser.add_argument("--lanes", type=int, default=4)
    args = parser.parse_args()

    port = free_port()
    emr = FakeEmr("AA")
    mllp = EmrConfig(name="his", kind="hl7-mllp", port=port, timeout_seconds=10)
    scenario("HL7 MLLP", mllp, args.messages, args.lanes, lambda: _started(emr, port),
             lambda: MllpTransport("127.0.0.1", port, timeout=10))

    fport = free_port()
    stub = EmrConfig(name="emr-fhir", kind="fhir", base_url=f"http://127.0.0.1:{fport}/fhir", timeout_seconds=10)
    scenario("FHIR (stub server)", stub, args.fhir_messages, args.lanes, lambda: fhir_stub(fport),
             lambda: FhirTransport(stub.base_url, timeout=10))

    if args.sekmet:
        with tempfile.TemporaryDirectory() as work:
            sport = free_port()
            proc = sekmet_server(sport, Path(work))
            if proc is None:
                print("FHIR (sekmet-fhir): skipped, sekmet not available")
                return
            try:
                real = EmrConfig(name="emr-fhir", kind="fhir", base_url=f"http://127.0.0.1:{sport}/fhir",
                                 timeout_seconds=30)

                async def nothing() -> asyncio.base_events.Server:
                    return await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)

                # the baseline re-sends the same Bundles: conditional creates make it a no-op on the server
                scenario("FHIR (sekmet-fhir)", real, args.sekmet, args.lanes, nothing,
                         lambda: FhirTransport(real.base_url, timeout=30))
            finally:
                proc.terminate()
                proc.wait(10)


async def _started(emr: FakeEmr, port: int):  # type: ignore[no-untyped-def]
    await emr.start(port)
    return emr.server


if __name__ == "__main__":
    main()
