"""Benchmark: HL7 v2 over MLLP end to end on loopback, durable journal (issue 4, "Performance").

10 concurrent MLLP senders (separate process), each sending ``ORU^R01`` messages with 20 OBX and waiting for
the ACK before the next (original acknowledgement mode). The LIS commits each message to the journal (SQLite,
synchronous=FULL, group commit) before answering AA, and parses, matches and stores in the background.
Reported: messages/s acknowledged, results/s stored (sustained: until every result is in the database), and
the p50/p99 ACK latency seen by the senders. Baseline in the same run: a bare asyncio MLLP server answering
every block with a fixed ACK, storing nothing.

Usage: python bench/hl7_e2e.py [--senders 10] [--messages 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._e2e_common import (
    CBC,
    commit_floor_ms,
    free_port,
    make_lis,
    run_sender,
    sender_report,
    start_links,
    summary,
    wait_processed,
)
from drivers.profile import get_profile
from drivers.simulator.messages import hl7_results
from lis.config import InstrumentConfig

SCRIPT = Path(__file__).resolve()
VT, FS, CR = b"\x0b", b"\x1c", b"\r"
FIXED_ACK = b"MSH|^~\\&|LIS||||20260101000000||ACK^R01^ACK|1|P|2.5.1\rMSA|AA|1\r"


async def one_sender(port: int, k: int, count: int, specimens: int) -> list[float]:
    profile = get_profile("generic-hl7")
    rng = random.Random(k)
    messages = [hl7_results(profile, f"B{(k * count + i) % specimens:06d}", CBC, rng, control_id=f"H{k}-{i}")
                for i in range(count)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    for message in messages:
        start = time.perf_counter()
        writer.write(VT + message + FS + CR)
        reply = await reader.readuntil(FS + CR)
        latencies.append(time.perf_counter() - start)
        assert b"MSA|AA" in reply, reply[:200]
    writer.close()
    return latencies


async def sender_main(port: int, senders: int, count: int, specimens: int) -> None:
    start = time.time()
    lat = await asyncio.gather(*(one_sender(port, k, count, specimens) for k in range(senders)))
    end = time.time()
    print(json.dumps({"start": start, "end": end, "latencies": summary([x for xs in lat for x in xs])}))


async def baseline_server(port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(FS + CR)
                writer.write(VT + FIXED_ACK + FS + CR)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port, limit=64 * 1024 * 1024)


async def run(senders: int, count: int) -> dict[str, object]:
    total_messages = senders * count
    inst = InstrumentConfig(name="hl7-bench", profile="generic-hl7", protocol="hl7", port=free_port())
    ctx = make_lis([inst], total_messages)
    links, journal = await start_links(ctx)
    args = ["--port", str(inst.port), "--senders", str(senders), "--messages", str(count), "--specimens",
            str(total_messages)]
    report = await asyncio.to_thread(sender_report, run_sender(SCRIPT, args))
    done = await wait_processed(ctx, total_messages * len(CBC))
    await links[0].stop()
    journal.close()
    port = free_port()
    server = await baseline_server(port)
    args[1] = str(port)
    base = await asyncio.to_thread(sender_report, run_sender(SCRIPT, args))
    server.close()
    acked = total_messages / (report["end"] - report["start"])
    baseline = total_messages / (base["end"] - base["start"])
    return {"messages": total_messages, "acked_per_s": round(acked, 1),
            "stored_results_per_s": round(total_messages * len(CBC) / (done - report["start"])),
            "stored_messages_per_s": round(total_messages / (done - report["start"]), 1),
            "ack": report["latencies"], "journal_batches": journal.batches,
            "baseline_per_s": round(baseline, 1), "baseline_ack": base["latencies"],
            "ratio": round(acked / baseline, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="lis")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=60, help="messages per sender")
    parser.add_argument("--specimens", type=int, default=0)
    args = parser.parse_args()
    if args.role == "sender":
        asyncio.run(sender_main(args.port, args.senders, args.messages, args.specimens))
        return
    import os

    floor = commit_floor_ms()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; one durable SQLite commit "
          f"(WAL, synchronous=FULL) takes {floor} ms here now")
    r = asyncio.run(run(args.senders, args.messages))
    print(f"HL7 e2e over MLLP, {args.senders} concurrent senders x {args.messages} ORU^R01 x 20 OBX, "
          "SQLite durable journal:")
    print(f"  acknowledged: {r['acked_per_s']} messages/s, ACK latency p50 {r['ack']['p50_ms']} ms, "
          f"p99 {r['ack']['p99_ms']} ms ({r['journal_batches']} journal commits for {r['messages']} messages)")
    print(f"  stored (sustained, parse+match+store): {r['stored_messages_per_s']} messages/s = "
          f"{r['stored_results_per_s']} results/s")
    print(f"  baseline (bare asyncio MLLP server, fixed ACK, stores nothing): {r['baseline_per_s']} messages/s, "
          f"p99 {r['baseline_ack']['p99_ms']} ms; ratio acknowledged ours/baseline = {r['ratio']}")


if __name__ == "__main__":
    main()
