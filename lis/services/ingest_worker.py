"""Where spooled analyser messages are adopted, parsed and stored: a worker process, or a worker thread.

:class:`ProcessRunner` is what ``lis serve`` uses. Processing is CPU work in Python (parse, match, build the
rows); run in the process that serves the analyser links, it holds the interpreter lock in stretches of
milliseconds, and every ACK the event loop owes an analyser waits for it. In a worker process of its own it
competes only for a CPU core (``bench/astm_e2e.py``: frame ACK p99 from ~5 ms to ~3 ms and stored results/s
up by half, see README "Performance"). One worker on SQLite (one writer anyway); two on PostgreSQL, where
instruments are stored in parallel. Order per instrument is kept by the caller, which sends an instrument's
next batch only when its previous one is done.

:class:`ThreadRunner` does the same work on one thread of this process (tests, tools).

Both return ``(outcome, event)`` pairs; the caller publishes the events on its bus (the worker process has
no subscribers) and releases the spool entries. A worker process that dies (killed, out of memory) is
replaced on the next batch; the batch it held is still in the spool and is sent again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lis.config import Config
from lis.services.ingest import IngestOutcome, IngestService
from lis.services.spool import SpoolEntry

if TYPE_CHECKING:
    from lis.context import LisContext

log = logging.getLogger(__name__)

Outcomes = list[tuple[IngestOutcome, Any]]


class ProcessingRunner(Protocol):
    async def start(self) -> None: ...

    async def process(self, entries: Sequence[SpoolEntry]) -> Outcomes: ...

    def close(self) -> None: ...


class ThreadRunner:
    """Process on one dedicated thread of this process (one at a time: SQLite has one writer)."""

    def __init__(self, ingest: IngestService) -> None:
        self._ingest = ingest
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ingest")

    async def start(self) -> None:
        return None

    async def process(self, entries: Sequence[SpoolEntry]) -> Outcomes:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._ingest.process_entries,
                                                                list(entries))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class ProcessRunner:
    """Process in worker process(es) started with ``spawn`` (see module docstring).

    ``setup`` is called in each worker with its :class:`LisContext` to register what the composition root
    registers in the server (the drivers' parsers); it must be a module-level function (pickled by name).
    """

    def __init__(self, config: Config, setup: Callable[[LisContext], None], *, workers: int | None = None,
                 catalog_generation: Callable[[], int] = lambda: 0) -> None:
        self._config_json = config.model_dump_json()
        self._setup = setup
        self._workers = workers or (1 if config.database_url.startswith("sqlite") else 2)
        self._generation = catalog_generation
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self._workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                initargs=(self._config_json, self._setup, logging.getLogger().getEffectiveLevel()))
        return self._pool

    async def start(self) -> None:
        """Start the worker(s) now, so that the first message does not wait for an interpreter to start."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor(), _ping) for _ in range(self._workers)))

    async def process(self, entries: Sequence[SpoolEntry]) -> Outcomes:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            return await loop.run_in_executor(pool, _worker_process, list(entries), self._generation())
        except concurrent.futures.process.BrokenProcessPool:
            if self._pool is pool:  # not one another instrument's batch has already replaced
                log.error("ingest worker process died; starting a new one (the batch stays in the spool)")
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# -- in the worker process ---------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(config_json: str, setup: Callable[[LisContext], None], log_level: int) -> None:
    from lis.context import LisContext

    _exit_with_parent(os.getppid())
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s [ingest worker]: %(message)s")
    ctx = LisContext.open(Config.model_validate_json(config_json))
    setup(ctx)
    _WORKER["ctx"] = ctx
    _WORKER["generation"] = 0


def _exit_with_parent(parent: int) -> None:
    """A server killed with SIGKILL cannot stop its worker, and the worker's end of the pipe never sees EOF
    (it holds both ends of the call queue): the worker watches for being orphaned and exits. A transaction
    it was in is rolled back; the entries are still in the spool and the next server adopts them."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ping() -> bool:
    return "ctx" in _WORKER


def _worker_process(entries: list[SpoolEntry], catalog_generation: int) -> Outcomes:
    ctx: LisContext = _WORKER["ctx"]
    if catalog_generation != _WORKER["generation"]:  # the catalogue changed in the server process
        ctx.catalog.invalidate()
        _WORKER["generation"] = catalog_generation
    out = ctx.ingest.process_entries(entries)
    for outcome, _event in out:
        outcome.report = None  # not needed by the caller; not sent back over the pipe
    return out
