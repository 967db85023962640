"""``lis simulate``: play an analyser against a LIS (see :mod:`drivers.simulator`).

Targets: ``tcp://HOST:PORT`` (connect to the LIS), ``serial:///dev/ttyX?baud=9600&bytesize=8&parity=N&stopbits=1``
(paced at the line speed, 10 bits per byte for 8N1), or listen mode ``--listen tcp://HOST:PORT`` for instruments
the LIS connects to (``transport = "tcp-client"``).

Each message is resent until acknowledged (ASTM: all frames ACKed; HL7: MSA AA), reconnecting with backoff
when the connection drops. The report on stdout is JSON lines, one per event, e.g.
``{"event": "acked", "n": 3, "id": "SIM-1-3", "specimen": "2611260003", "results": 8}``;
events: ``sent``, ``acked``, ``rejected`` (HL7 AE/AR), ``retry``, ``failed``, ``query``, ``answer``, ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qs, urlparse

from drivers.profile import Profile, get_profile
from drivers.simulator.faults import FaultyStream
from drivers.simulator.messages import (
    astm_ordered_tests,
    astm_query,
    astm_results,
    hl7_query,
    hl7_results,
    split_capture,
)
from drivers.simulator.peers import AstmPeerSession, MllpPeerSession
from drivers.simulator.sources import Sample, pending_from_api, pending_from_config, sample_stream
from drivers.transports.stream import AsyncioStream, ByteStream


@dataclass
class SimOptions:
    """Everything ``lis simulate`` takes (see the command's help)."""

    profile: str
    to: str = ""
    listen: str = ""
    count: int = 10  # 0 = forever
    rate: float = 0.0  # messages per second; 0 = back to back
    file: Path | None = None
    faults: set[str] = field(default_factory=set)
    from_config: Path | None = None
    from_lis: str = ""
    token: str = ""
    instrument: str = ""
    query: bool = False
    tests_per_message: int = 0
    qc_every: int = 0
    seed: int = 1
    reply_timeout: float = 15.0  # ASTM sender timeout (LIS1-A: 15 s)
    ack_timeout: float = 10.0  # HL7: resend when no ACK within this
    max_attempts: int = 0  # 0 = resend until acknowledged
    pace: bool = True  # serial: write at the line speed
    quiet: bool = False
    profile_dirs: tuple[Path, ...] = ()
    samples: list[Sample] = field(default_factory=list)  # given specimens first (programmatic use)
    parent_pid: int = 0  # exit when this process (e.g. ``lis demo``) is gone


class Reporter:
    """JSON lines on ``out`` (flushed per line, so a test can follow a running simulator)."""

    def __init__(self, out: TextIO, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.counts: dict[str, int] = {}

    def __call__(self, event: str, **data: object) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        if self.quiet and event not in ("done", "failed"):
            return
        self.out.write(json.dumps({"event": event, **data}, ensure_ascii=False) + "\n")
        self.out.flush()


class PacedStream:
    """A serial line's speed on a pty: bytes are delivered when their last bit would have arrived
    (``bits_per_byte / baud`` seconds per byte, 10 bits for 8N1), so the receiver sees real line timing."""

    def __init__(self, inner: ByteStream, baud: int, bits_per_byte: int = 10) -> None:
        self._inner = inner
        self._byte_time = bits_per_byte / baud
        self._free_at = 0.0
        self.peer = inner.peer
        self.bytes_sent = 0
        self.busy_time = 0.0

    @property
    def delivered_at(self) -> float:
        """``time.monotonic()`` when the last byte written so far reaches the other end."""
        return self._free_at

    async def read(self) -> bytes:
        return await self._inner.read()

    def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        duration = len(data) * self._byte_time
        self._free_at = max(self._free_at, now) + duration
        self.bytes_sent += len(data)
        self.busy_time += duration
        loop.call_at(loop.time() + (self._free_at - now), self._inner.write, data)

    async def drain(self) -> None:
        await self._inner.drain()
        delay = self._free_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def close(self) -> None:
        await self._inner.close()


Connector = Callable[[], Awaitable[ByteStream]]


def _connector(options: SimOptions) -> tuple[Connector, Callable[[], None]]:
    """The function that opens (or accepts) a connection, and a cleanup for listen mode."""
    if options.listen:
        url = urlparse(options.listen)
        accepted: asyncio.Queue[ByteStream] = asyncio.Queue()
        holder: dict[str, asyncio.Server] = {}

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accepted.put(AsyncioStream(reader, writer))

        async def listen() -> ByteStream:
            if "server" not in holder:
                holder["server"] = await asyncio.start_server(on_client, url.hostname or "127.0.0.1", url.port,
                                                              reuse_address=True)
            return await accepted.get()

        def cleanup() -> None:
            if "server" in holder:
                holder["server"].close()

        return listen, cleanup
    url = urlparse(options.to)
    if url.scheme == "tcp":
        async def connect() -> ByteStream:
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
            return AsyncioStream(reader, writer)

        return connect, lambda: None
    if url.scheme == "serial":
        from drivers.transports.serial_port import SerialStream, open_serial

        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        baud = int(q.get("baud", q.get("baudrate", "9600")))
        bytesize, parity = int(q.get("bytesize", "8")), q.get("parity", "N").upper()
        stopbits = float(q.get("stopbits", "1"))

        async def open_port() -> ByteStream:
            port = open_serial(url.path, baud, bytesize, parity, int(stopbits) if stopbits in (1, 2) else stopbits)
            stream: ByteStream = SerialStream(port)
            bits = 1 + bytesize + (0 if parity == "N" else 1) + int(stopbits)
            return PacedStream(stream, baud, bits) if options.pace else stream

        return open_port, lambda: None
    raise ValueError(f"--to {options.to!r}: use tcp://HOST:PORT or serial:///dev/ttyX (or --listen tcp://HOST:PORT)")


class Simulator:
    """One simulated analyser (see module docstring)."""

    def __init__(self, options: SimOptions, out: TextIO | None = None) -> None:
        self.options = options
        self.profile: Profile = get_profile(options.profile, options.profile_dirs)
        self.protocol = self.profile.protocol
        self.report = Reporter(out or sys.stdout, options.quiet)
        self.rng = random.Random(options.seed)
        self._connect, self._cleanup = _connector(options)
        self._session: AstmPeerSession | MllpPeerSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._faults = set(options.faults)
        self.acked: list[str] = []

    # -- connection -------------------------------------------------------------------------------
    async def _ensure(self) -> AstmPeerSession | MllpPeerSession:
        backoff = 0.2
        while self._session is None or self._session.closed:
            try:
                stream = await self._connect()
            except (OSError, ValueError) as exc:
                if isinstance(exc, ValueError):
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if self._faults:
                faulty = FaultyStream(stream, self._faults, self.protocol)
                self._faults = faulty.pending  # each fault once per run, across reconnections
                stream = faulty
            if self.protocol == "astm":
                self._session = AstmPeerSession(stream, frame_size=self.profile.frame_size,
                                                reply_timeout=self.options.reply_timeout)
            else:
                self._session = MllpPeerSession(stream)
            self._task = asyncio.create_task(self._session.run())
            self.report("connected", peer=stream.peer)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.stream.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        self._cleanup()

    # -- sending ----------------------------------------------------------------------------------
    async def deliver(self, message: bytes, n: int, message_id: str, **info: object) -> bool:
        """Send until acknowledged (or ``max_attempts``); report each step."""
        attempt = 0
        self.report("sent", n=n, id=message_id, **info)
        while True:
            attempt += 1
            session = await self._ensure()
            code = await self._attempt(session, message)
            if code == "AA":
                self.acked.append(message_id)
                self.report("acked", n=n, id=message_id, attempts=attempt, **info)
                return True
            if code in ("AE", "AR"):
                self.report("rejected", n=n, id=message_id, code=code, **info)
                return False
            if self.options.max_attempts and attempt >= self.options.max_attempts:
                self.report("failed", n=n, id=message_id, attempts=attempt, **info)
                return False
            self.report("retry", n=n, id=message_id, attempt=attempt, reason=code)
            await asyncio.sleep(0.1)

    async def _attempt(self, session: AstmPeerSession | MllpPeerSession, message: bytes) -> str:
        if isinstance(session, AstmPeerSession):
            return "AA" if await session.send(message) else "not acknowledged"
        try:
            reply = await session.request(message, self.options.ack_timeout)
        except TimeoutError:
            return "ack timeout"
        except asyncio.CancelledError:
            if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            return "connection lost"
        for code in ("AA", "CA", "AE", "CE", "AR", "CR"):
            if f"MSA|{code}".encode() in reply:
                return {"CA": "AA", "CE": "AE", "CR": "AR"}.get(code, code)
        return "no MSA"

    async def ask(self, sample: Sample) -> tuple[str, ...]:
        """Host query for ``sample`` the way the analyser does it; returns the tests the LIS ordered."""
        session = await self._ensure()
        self.report("query", specimen=sample.specimen_id)
        if isinstance(session, AstmPeerSession):
            if not await session.send(astm_query(self.profile, [sample.specimen_id])):
                return ()
            try:
                answer = await asyncio.wait_for(session.received.get(), self.options.reply_timeout * 2)
            except TimeoutError:
                return ()
            tests = tuple(astm_ordered_tests(answer, self.profile).get(sample.specimen_id, []))
        else:
            query = hl7_query(self.profile, sample.specimen_id, self.rng)
            try:
                reply = await session.request(query, self.options.ack_timeout)
            except (TimeoutError, asyncio.CancelledError):
                return ()
            tests = ()
            if b"|OK" in reply:
                try:
                    order = await asyncio.wait_for(session.received.get(), self.options.ack_timeout)
                except TimeoutError:
                    order = b""
                tests = _hl7_order_tests(order)
        self.report("answer", specimen=sample.specimen_id, tests=list(tests))
        return tests

    def build(self, sample: Sample, codes: tuple[str, ...], message_id: str) -> bytes:
        if self.protocol == "astm":
            return astm_results(self.profile, sample.specimen_id, codes, self.rng, qc=sample.qc,
                                control_id=message_id)
        return hl7_results(self.profile, sample.specimen_id, codes, self.rng, qc=sample.qc, control_id=message_id)

    async def run(self) -> dict[str, int]:
        opts = self.options
        main = asyncio.current_task()
        watchdog = asyncio.create_task(self._watch_parent(main)) if opts.parent_pid and main else None
        try:
            if opts.file is not None:
                await self._replay(opts.file)
            else:
                await self._generate()
        except asyncio.CancelledError:
            if watchdog is None or not watchdog.done():
                raise
            self.report("parent-gone", pid=opts.parent_pid)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            await self.close()
        self.report("done", **{k: v for k, v in self.report.counts.items() if k != "done"})
        return self.report.counts

    async def _watch_parent(self, main: asyncio.Task[dict[str, int]]) -> None:
        """A simulator started by another process (``lis demo``) ends when that process ends, however it ended."""
        while os.getppid() == self.options.parent_pid:
            await asyncio.sleep(1.0)
        main.cancel()

    async def _replay(self, path: Path) -> None:
        messages = split_capture(path.read_bytes(), self.protocol)
        total = self.options.count or len(messages)
        for n in range(1, total + 1):
            message = messages[(n - 1) % len(messages)]
            await self.deliver(message, n, f"{path.name}#{(n - 1) % len(messages) + 1}", bytes=len(message))
            await self._pace()

    async def _generate(self) -> None:
        opts = self.options
        pending: list[Sample] = list(opts.samples)
        refill: Callable[[], list[Sample]] | None = None
        if opts.from_config is not None:
            config_path = opts.from_config

            def refill() -> list[Sample]:
                return pending_from_config(config_path, self.profile, opts.instrument)
        elif opts.from_lis:
            def refill() -> list[Sample]:
                return pending_from_api(opts.from_lis, opts.token, self.profile)
        if refill is not None:
            pending += await asyncio.to_thread(refill)
        samples = sample_stream(self.profile, self.rng, pending, tests_per_message=opts.tests_per_message,
                                qc_every=opts.qc_every, refill=refill if opts.count == 0 else None)
        n = 0
        while not opts.count or n < opts.count:
            n += 1
            sample = next(samples)
            codes = sample.codes
            if opts.query and self.profile.host_query and not sample.qc:
                asked = await self.ask(sample)
                codes = asked or codes
            message_id = f"SIM-{opts.seed}-{n}"
            await self.deliver(self.build(sample, codes, message_id), n, message_id, specimen=sample.specimen_id,
                               results=len(codes), qc=sample.qc)
            await self._pace()

    async def _pace(self) -> None:
        if self.options.rate > 0:
            await asyncio.sleep(1.0 / self.options.rate)


def _hl7_order_tests(raw: bytes) -> tuple[str, ...]:
    """Instrument test codes in an OML^O33 (OBR-4.1) or a Mindray DSR^Q03 (DSP 29.., ``code^^^``)."""
    from drivers.hl7.message import ParseError, parse_message

    try:
        msg = parse_message(raw)
    except ParseError:
        return ()
    tests = [s.value(4, 1) for s in msg.segments("OBR") if s.value(4, 1)]
    for dsp in msg.segments("DSP"):
        if dsp.value(1).isdigit() and int(dsp.value(1)) >= 29 and dsp.field(3):
            tests.append(dsp.field(3).split("^")[0])
    return tuple(tests)


def run_simulator(options: SimOptions, out: TextIO | None = None) -> dict[str, int]:
    """Run the simulator to the end (blocking); returns the event counts."""
    return asyncio.run(Simulator(options, out).run())
