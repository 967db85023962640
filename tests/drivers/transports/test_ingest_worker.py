"""Processing in the worker process, and the spool carrying the analysers through a database outage.

Real peers: the ingest worker is a real spawned process (killed with SIGKILL in one test), the analyser is
the simulator's ASTM peer over TCP, and the outage is a real TCP proxy in front of PostgreSQL that stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from drivers.simulator.peers import AstmPeerSession
from drivers.transports.stream import AsyncioStream
from drivers.wiring import register_parsers
from lis.context import LisContext
from lis.models import RawMessage, Result, TestCodeMap
from lis.services.ingest_worker import ProcessRunner
from tests.conftest import free_port
from tests.drivers.transports.helpers import instrument, make_orders, results, running_link
from tests.lis.astm_fixtures import astm_message


async def send_astm(port: int, messages: list[bytes]) -> list[bool]:
    """One analyser connection; whether the LIS acknowledged each message (its last frame)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stream = AsyncioStream(reader, writer)
    session = AstmPeerSession(stream)
    task = asyncio.create_task(session.run())
    acked = [await asyncio.wait_for(session.send(m), 30) for m in messages]
    await stream.close()
    await task
    return acked


async def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def test_worker_process_stores_results_and_sees_catalogue_changes_at_once(ctx: LisContext) -> None:
    make_orders(ctx, {"W1": ["GLU"], "W2": ["GLU"]})
    cfg = instrument(ctx, "xn-1")

    async def main() -> None:
        async with running_link(ctx, cfg, worker="process") as link:
            runner = link.channel.journal.runner
            assert isinstance(runner, ProcessRunner)
            assert await send_astm(cfg.port, [astm_message("W1", [("XG", "5.5", "mmol/L")])]) == [True]
            await eventually(lambda: len(results(ctx)) == 1)
            [first] = results(ctx)
            assert (first.status, first.test_code) == ("unmatched", None)
            assert first.unmatched_reason.startswith("instrument code 'XG' is not mapped")
            # the lab maps the code in the server process; the worker must not keep its 30 s old copy
            with ctx.db.write() as session:
                session.add(TestCodeMap(instrument="xn-1", instrument_code="XG", test_code="GLU"))
            ctx.catalog.invalidate()
            assert await send_astm(cfg.port, [astm_message("W2", [("XG", "6.1", "mmol/L")])]) == [True]
            await eventually(lambda: len(results(ctx)) == 2)
            assert {pid for pid in (runner._pool._processes if runner._pool else {})} - {os.getpid()}

    asyncio.run(main())
    second = next(r for r in results(ctx) if r.accession == "W2")
    assert (second.status, second.test_code, second.value) == ("received", "GLU", "6.1")


def test_a_killed_worker_is_replaced_and_the_batch_it_held_is_stored_once(ctx: LisContext) -> None:
    make_orders(ctx, {f"K{i}": ["GLU"] for i in range(6)})
    cfg = instrument(ctx, "xn-1")

    async def main() -> None:
        async with running_link(ctx, cfg, worker="process") as link:
            runner = link.channel.journal.runner
            assert isinstance(runner, ProcessRunner) and runner._pool is not None
            assert await send_astm(cfg.port, [astm_message("K0", [("GLU", "5.0", "mmol/L")])]) == [True]
            await eventually(lambda: len(results(ctx)) == 1)
            for pid in list(runner._pool._processes):  # type: ignore[union-attr]
                os.kill(pid, signal.SIGKILL)
            messages = [astm_message(f"K{i}", [("GLU", f"5.{i}", "mmol/L")]) for i in range(1, 6)]
            assert await send_astm(cfg.port, messages) == [True] * 5  # acknowledged: they are in the spool
            await eventually(lambda: len(results(ctx)) == 6)
            await link.channel.processor.join()
            await eventually(lambda: link.channel.journal.spool.count() == 0, timeout=10)

    asyncio.run(main())
    stored = sorted((r.accession, r.value) for r in results(ctx))
    assert stored == [(f"K{i}", f"5.{i}") for i in range(6)]


class TcpProxy:
    """A TCP forwarder to the database server that can be cut (the network between LIS and database)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def test_analysers_are_acknowledged_through_a_database_outage_and_nothing_is_lost(ctx: LisContext) -> None:
    if ctx.db.dialect != "postgresql":
        pytest.skip("a database server to lose: PostgreSQL (SQLite is a local file)")
    from lis.db import Database

    make_orders(ctx, {f"D{i}": ["GLU"] for i in range(5)})
    cfg = instrument(ctx, "xn-1")
    url = make_url(ctx.config.database_url)

    async def main() -> None:
        proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        await proxy.start()
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        config = ctx.config.model_copy(update={"database": ctx.config.database.model_copy(update={"url": proxied})})
        lis = LisContext(config, Database.from_url(proxied))
        register_parsers(lis.parsers)
        async with running_link(lis, cfg) as link:
            assert await send_astm(cfg.port, [astm_message("D0", [("GLU", "5.0", "mmol/L")])]) == [True]
            await eventually(lambda: len(results(ctx)) == 1)
            await proxy.cut()  # the database is gone
            messages = [astm_message(f"D{i}", [("GLU", f"5.{i}", "mmol/L")]) for i in range(1, 5)]
            started = time.monotonic()
            assert await send_astm(cfg.port, messages) == [True] * 4  # still acknowledged, from the spool
            assert time.monotonic() - started < 5
            await asyncio.sleep(1.5)
            assert len(results(ctx)) == 1 and link.channel.journal.spool.count() >= 4
            state = lis.status.snapshot()["xn-1"]
            assert "kept in the spool" in str(state.get("last_error", "")) and state["backlog"] >= 4
            await proxy.start()  # the database is back: the backlog is stored, in order, once
            await eventually(lambda: len(results(ctx)) == 5, timeout=60)
            await link.channel.processor.join()
            assert lis.status.snapshot()["xn-1"]["backlog"] == 0
        await proxy.cut()
        lis.db.dispose()

    asyncio.run(main())
    with ctx.db.read() as session:
        journal = session.exec(select(RawMessage).where(RawMessage.direction == "in").order_by(RawMessage.id)).all()
        stored = session.exec(select(Result).order_by(Result.id)).all()
    assert [r.status for r in journal] == ["processed"] * 5
    assert [r.accession for r in stored] == [f"D{i}" for i in range(5)]  # arrival order kept


PARENT = """
import asyncio, sys
from lis.config import Config
from lis.services.ingest_worker import ProcessRunner
from drivers.wiring import setup_worker

async def main():
    runner = ProcessRunner(Config.model_validate_json(sys.argv[1]), setup_worker)
    await runner.start()
    print(*runner._pool._processes, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_the_worker_exits_when_the_server_is_killed(ctx: LisContext) -> None:
    if ctx.db.dialect != "sqlite":
        pytest.skip("process supervision; one database backend is enough")
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", PARENT, ctx.config.model_dump_json()], stdout=subprocess.PIPE,
                              text=True, cwd=os.getcwd())
    try:
        assert parent.stdout is not None
        [worker] = [int(pid) for pid in parent.stdout.readline().split()]
        os.kill(worker, 0)  # alive
        parent.kill()  # SIGKILL: no clean shutdown of the pool
        parent.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):  # reap it if it was re-parented to us (a subreaper)
                os.waitpid(worker, os.WNOHANG)
            time.sleep(0.1)
        else:
            raise AssertionError(f"ingest worker {worker} still running after its server was killed")
    finally:
        parent.kill()
