"""Benchmark: ASTM end to end over loopback TCP and a 9600-baud pty, durable journal (issue 3, "Performance").

1. **10 analysers in parallel** over loopback TCP, 20 results per message, journal committed (SQLite,
   synchronous=FULL, group commit) before the ACK of each message's last frame, results parsed, matched and
   stored in the background: sustained results/s (until every result is in the database) and the p99 ACK
   turnaround per frame seen by the analysers. Baseline in the same run: a bare asyncio server that ACKs every
   ENQ and frame at once and stores nothing (what a "receiver that parses and stores nothing" costs).
2. **One persistent connection, back-to-back transfers**, each ENQ written in the same segment as the previous
   EOT: messages/s and results/s.
3. **Serial at 9600 baud** over a socat pty pair (skipped without socat), the analyser paced at the line
   speed: how busy the analyser's transmit line is (the LIS's ACK turnaround must not be the bottleneck).

Usage: python bench/astm_e2e.py [--analysers 10] [--messages 150] [--serial-messages 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
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
from drivers.astm.framing import frame_message
from drivers.profile import get_profile
from drivers.simulator.messages import astm_results
from drivers.simulator.peers import AstmPeerSession
from drivers.transports.stream import AsyncioStream, ByteStream
from lis.config import InstrumentConfig

SCRIPT = Path(__file__).resolve()
ACK, STX, ENQ, EOT = 0x06, 0x02, 0x05, 0x04


class TimingStream:
    """Measures, on the analyser side, the time from writing a frame (or ENQ) to reading its ACK."""

    def __init__(self, inner: ByteStream) -> None:
        self._inner = inner
        self.peer = inner.peer
        self.sent_at: float | None = None
        self.final = False
        self.latencies: list[float] = []
        self.final_latencies: list[float] = []  # frames that end a message: their ACK waits for the journal commit

    async def read(self) -> bytes:
        data = await self._inner.read()
        if self.sent_at is not None and ACK in data:
            self.latencies.append(time.monotonic() - self.sent_at)
            if self.final:
                self.final_latencies.append(self.latencies[-1])
            self.sent_at = None
        return data

    def write(self, data: bytes) -> None:
        self._inner.write(data)
        if data[:1] in (b"\x02", b"\x05"):
            self.final = data[:1] == b"\x02" and data[2:3] == b"L"  # the frame with the L record ends a message
            # on a paced serial line the frame is complete at the other end only when its last byte arrives
            self.sent_at = max(time.monotonic(), getattr(self._inner, "delivered_at", 0.0))

    async def drain(self) -> None:
        await self._inner.drain()

    async def close(self) -> None:
        await self._inner.close()


def messages_for(k: int, count: int, specimens: int) -> list[bytes]:
    profile = get_profile("generic-astm")
    rng = random.Random(k)
    return [astm_results(profile, f"B{(k * count + i) % specimens:06d}", CBC, rng, control_id=f"A{k}-{i}")
            for i in range(count)]


async def one_analyser(port: int, messages: list[bytes]) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stream = TimingStream(AsyncioStream(reader, writer))
    session = AstmPeerSession(stream)
    task = asyncio.create_task(session.run())
    for message in messages:
        while not await session.send(message):
            await asyncio.sleep(0.01)
    await stream.close()
    await task
    return stream.latencies, stream.final_latencies


async def sender_main(ports: list[int], count: int, specimens: int) -> None:
    batches = [messages_for(k, count, specimens) for k in range(len(ports))]
    start = time.time()
    latencies = await asyncio.gather(*(one_analyser(p, b) for p, b in zip(ports, batches, strict=True)))
    end = time.time()
    flat = [x for xs, _ in latencies for x in xs]
    final = [x for _, xs in latencies for x in xs]
    print(json.dumps({"start": start, "end": end, "latencies": summary(flat), "frames": len(flat),
                      "final_latencies": summary(final)}))


async def back_to_back_main(port: int, count: int, specimens: int) -> None:
    """One connection; the next ENQ goes out in the same write as the previous EOT."""
    frames = [frame_message(m) for m in messages_for(99, count, specimens)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.time()
    prefix = b""
    for message in frames:
        writer.write(prefix + bytes((ENQ,)))
        assert (await reader.readexactly(1))[0] == ACK
        for frame in message:
            writer.write(frame)
            assert (await reader.readexactly(1))[0] == ACK
        prefix = bytes((EOT,))
    writer.write(prefix)
    await writer.drain()
    end = time.time()
    writer.close()
    print(json.dumps({"start": start, "end": end}))


async def baseline_server(port: int) -> asyncio.Server:
    """ACK every ENQ and every frame end (LF after the checksum), store nothing."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_frame = False
        while data := await reader.read(65536):
            acks = 0
            for b in data:
                if b == ENQ:
                    acks += 1
                elif b == STX:
                    in_frame = True
                elif b == 0x0A and in_frame:
                    in_frame = False
                    acks += 1
            if acks:
                writer.write(bytes((ACK,)) * acks)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def parallel(analysers: int, count: int) -> dict[str, object]:
    specimens = analysers * count
    instruments = [InstrumentConfig(name=f"an-{k}", profile="generic-astm", protocol="astm", port=free_port())
                   for k in range(analysers)]
    ctx = make_lis(instruments, specimens)
    links, journal = await start_links(ctx)
    ports = [str(i.port) for i in instruments]
    proc = run_sender(SCRIPT, ["--mode", "parallel", "--ports", ",".join(ports), "--messages", str(count),
                               "--specimens", str(specimens)])
    report = await asyncio.to_thread(sender_report, proc)
    done = await wait_processed(ctx, specimens * len(CBC))
    for link in links:
        await link.stop()
    journal.close()
    total = specimens * len(CBC)
    # baseline: same load against a bare ACK server
    base_ports = [free_port() for _ in range(analysers)]
    servers = [await baseline_server(p) for p in base_ports]
    proc = run_sender(SCRIPT, ["--mode", "parallel", "--ports", ",".join(map(str, base_ports)), "--messages",
                               str(count), "--specimens", str(specimens)])
    base = await asyncio.to_thread(sender_report, proc)
    for server in servers:
        server.close()
    ours = total / (done - report["start"])
    baseline = total / (base["end"] - base["start"])
    return {"results": total, "results_per_s": round(ours), "acked_results_per_s":
            round(total / (report["end"] - report["start"])), "ack_per_frame": report["latencies"],
            "ack_last_frame": report["final_latencies"],
            "journal_batches": journal.batches, "baseline_results_per_s": round(baseline),
            "baseline_ack_per_frame": base["latencies"], "ratio_vs_baseline": round(ours / baseline, 2),
            "acked_ratio_vs_baseline": round(total / (report["end"] - report["start"]) / baseline, 2)}


async def back_to_back(count: int) -> dict[str, object]:
    inst = InstrumentConfig(name="b2b", profile="generic-astm", protocol="astm", port=free_port())
    ctx = make_lis([inst], count)
    links, journal = await start_links(ctx)
    proc = run_sender(SCRIPT, ["--mode", "b2b", "--ports", str(inst.port), "--messages", str(count),
                               "--specimens", str(count)])
    report = await asyncio.to_thread(sender_report, proc)
    done = await wait_processed(ctx, count * len(CBC))
    await links[0].stop()
    journal.close()
    return {"messages": count, "acked_messages_per_s": round(count / (report["end"] - report["start"])),
            "results_per_s": round(count * len(CBC) / (done - report["start"]))}


async def serial(count: int) -> dict[str, object]:
    if shutil.which("socat") is None:
        return {"skipped": "socat is not installed"}
    tmp = Path(tempfile.mkdtemp(prefix="lis-pty-"))
    lis_tty, sim_tty = tmp / "lis", tmp / "sim"
    socat = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={lis_tty}", f"pty,raw,echo=0,link={sim_tty}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (lis_tty.exists() and sim_tty.exists()):
            await asyncio.sleep(0.02)
        inst = InstrumentConfig(name="tty", profile="generic-astm", protocol="astm", transport="serial",
                                device=str(lis_tty), baudrate=9600)
        ctx = make_lis([inst], count)
        links, journal = await start_links(ctx)
        while ctx.status.snapshot().get("tty", {}).get("state") != "connected":
            await asyncio.sleep(0.02)
        proc = run_sender(SCRIPT, ["--mode", "serial", "--ports", str(sim_tty), "--messages", str(count),
                                   "--specimens", str(count)])
        report = await asyncio.to_thread(sender_report, proc)
        await wait_processed(ctx, count * len(CBC))
        await links[0].stop()
        journal.close()
    finally:
        socat.terminate()
    return {"messages": count, "seconds": round(report["end"] - report["start"], 2),
            "analyser_tx_busy_pct": round(100 * report["busy"] / (report["end"] - report["start"]), 1),
            "ack_per_frame": report["latencies"]}


async def serial_main(device: str, count: int, specimens: int) -> None:
    from drivers.simulator.runner import PacedStream
    from drivers.transports.serial_port import SerialStream, open_serial

    paced = PacedStream(SerialStream(open_serial(device, 9600)), 9600)
    stream = TimingStream(paced)
    session = AstmPeerSession(stream)
    task = asyncio.create_task(session.run())
    messages = messages_for(7, count, specimens)
    start = time.time()
    for message in messages:
        while not await session.send(message):
            await asyncio.sleep(0.01)
    end = time.time()
    await stream.close()
    await task
    print(json.dumps({"start": start, "end": end, "busy": paced.busy_time, "latencies": summary(stream.latencies)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="lis")
    parser.add_argument("--mode", default="")
    parser.add_argument("--ports", default="")
    parser.add_argument("--analysers", type=int, default=10)
    parser.add_argument("--messages", type=int, default=150, help="messages per analyser")
    parser.add_argument("--specimens", type=int, default=0)
    parser.add_argument("--serial-messages", type=int, default=6)
    args = parser.parse_args()
    if args.role == "sender":
        if args.mode == "parallel":
            asyncio.run(sender_main([int(p) for p in args.ports.split(",")], args.messages, args.specimens))
        elif args.mode == "b2b":
            asyncio.run(back_to_back_main(int(args.ports), args.messages, args.specimens))
        else:
            asyncio.run(serial_main(args.ports, args.messages, args.specimens))
        return
    import os

    floor = commit_floor_ms()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; one durable SQLite commit "
          f"(WAL, synchronous=FULL) takes {floor} ms here now")
    par = asyncio.run(parallel(args.analysers, args.messages))
    print(f"ASTM e2e, {args.analysers} analysers x {args.messages} messages x 20 results, SQLite durable journal:")
    print(f"  sustained: {par['results_per_s']} results/s stored (ACKed at {par['acked_results_per_s']}/s), "
          f"ACK per frame p50 {par['ack_per_frame']['p50_ms']} ms, p99 {par['ack_per_frame']['p99_ms']} ms "
          f"({par['journal_batches']} journal commits for {par['results'] // 20} messages; ACK of a message's last "
          f"frame, which waits for the journal commit: p50 {par['ack_last_frame']['p50_ms']} ms, "
          f"p99 {par['ack_last_frame']['p99_ms']} ms)")
    print(f"  baseline (bare asyncio ACK server, stores nothing): {par['baseline_results_per_s']} results/s, "
          f"ACK p99 {par['baseline_ack_per_frame']['p99_ms']} ms; ratio ours/baseline: stored "
          f"{par['ratio_vs_baseline']}, acknowledged {par['acked_ratio_vs_baseline']}")
    b2b = asyncio.run(back_to_back(args.messages * 2))
    print(f"  one persistent connection, back-to-back transfers (ENQ in the same segment as EOT): "
          f"{b2b['acked_messages_per_s']} messages/s acknowledged, {b2b['results_per_s']} results/s stored")
    ser = asyncio.run(serial(args.serial_messages))
    if "skipped" in ser:
        print(f"  serial 9600 baud: skipped ({ser['skipped']})")
    else:
        print(f"  serial 9600 baud over a pty pair: {ser['messages']} messages in {ser['seconds']} s, analyser line "
              f"busy {ser['analyser_tx_busy_pct']} % (ACK per frame p99 {ser['ack_per_frame']['p99_ms']} ms)")


if __name__ == "__main__":
    main()
