"""Journal-before-acknowledge for every link in the process, with group commit, and ordered processing.

ARCHITECTURE.md principle 2 (LIS1-A: journal before the ACK of the last frame; HL7: before MSA AA): a link
awaits :meth:`GroupJournal.journal`, which returns only once the raw bytes are committed durably; then it
acknowledges. The writer is one thread that takes every request waiting at that moment and commits them
in ONE transaction (``IngestService.journal_many``): one fsync for ten analysers finishing a message at
the same time instead of ten. Each message is still committed before its own acknowledgement.

:class:`OrderedProcessor` runs ``IngestService.prepare`` then ``IngestService.apply`` after the
acknowledgement, one batch at a time per instrument (so results of one analyser are stored in the order it
sent them, and a resend is always processed after the original, which makes the byte-identical duplicate
check reliable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from lis.services.ingest import IngestOutcome, IngestService

log = logging.getLogger(__name__)

MAX_BATCH = 256
T = TypeVar("T")


@dataclass(slots=True)
class _Request:
    instrument: str
    raw: bytes
    peer: str
    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop


@dataclass(slots=True)
class _Job:
    call: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupJournal:
    """One writer thread committing journal entries in batches (see module docstring).

    On SQLite the same thread also runs the processing jobs (:meth:`run_job`), one at a time and only when no
    journal request is waiting: SQLite has one writer, and a journal commit queued behind a processing
    transaction would otherwise sit in SQLite's busy-wait back-off (1, 2, 5, 10 ms...) while an analyser waits
    for its ACK. Journal requests always go first.
    """

    def __init__(self, ingest: IngestService) -> None:
        self._ingest = ingest
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._wake = threading.Semaphore(0)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.entries = 0

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
                self._thread.start()

    async def journal(self, instrument: str, raw: bytes, peer: str = "") -> int:
        """Commit ``raw`` durably; return its journal id. Raises if the commit failed (then do not ACK)."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.put(_Request(instrument, raw, peer, future, loop))
        self._wake.release()
        return await future

    async def run_job(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the writer thread after every journal request waiting at that moment."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(call, future, loop))
        self._wake.release()
        return await future

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._wake.release()
            self._thread.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.acquire()
            batch: list[_Request] = []
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            if batch:
                self._commit(batch)
                for _ in range(len(batch) - 1):  # the semaphore was released once per request
                    self._wake.acquire(blocking=False)
                continue
            if stop:
                return
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                continue
            try:
                result = job.call()
            except BaseException as exc:
                job.loop.call_soon_threadsafe(_set_exception, job.future, exc)
            else:
                job.loop.call_soon_threadsafe(_set_result, job.future, result)

    def _commit(self, batch: list[_Request]) -> None:
        try:
            ids = self._ingest.journal_many([(r.instrument, r.raw, r.peer) for r in batch])
        except Exception as exc:  # the database refused: every waiting link NAKs / does not ACK
            log.error("journal commit of %d message(s) failed: %s", len(batch), exc)
            for r in batch:
                r.loop.call_soon_threadsafe(_set_exception, r.future, exc)
            return
        self.batches += 1
        self.entries += len(batch)
        for r, raw_id in zip(batch, ids, strict=True):
            r.loop.call_soon_threadsafe(_set_result, r.future, raw_id)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


OutcomeCallback = Callable[[IngestOutcome], Awaitable[None]]


class OrderedProcessor:
    """Process journal entries of one instrument in arrival order, off the event loop.

    ``runner`` runs the blocking ``process`` call: the journal writer thread on SQLite (see
    :class:`GroupJournal`), a worker thread (``asyncio.to_thread``) on PostgreSQL, where instruments process
    in parallel.
    """

    def __init__(self, ingest: IngestService, instrument: str,
                 runner: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None) -> None:
        self._ingest = ingest
        self._runner = runner or asyncio.to_thread
        self.instrument = instrument
        self._queue: asyncio.Queue[tuple[int, OutcomeCallback | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.processed = 0
        self.max_batch = 2  # entries per processing transaction: short, since journal commits wait behind it on SQLite

    def submit(self, raw_id: int, then: OutcomeCallback | None = None) -> None:
        """Queue ``raw_id`` for processing; ``then`` is awaited with the outcome (e.g. to answer a host query)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"process {self.instrument}")
        self._queue.put_nowait((raw_id, then))

    async def join(self) -> None:
        await self._queue.join()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())  # what queued up while the writer was busy
            try:
                outcomes = await self._process(batch)
                for (_raw_id, then), outcome in zip(batch, outcomes, strict=True):
                    if then is not None:
                        with contextlib.suppress(Exception):
                            await then(outcome)
            except asyncio.CancelledError:
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _process(self, batch: list[tuple[int, OutcomeCallback | None]]) -> list[IngestOutcome]:
        """One transaction for the batch; if it fails, one by one, so one bad entry holds up no other."""
        ids = [raw_id for raw_id, _ in batch]
        try:
            # two jobs, not one: the writer thread commits the journal requests that came in while it parsed
            # and matched before it writes (an ACK waits for at most one half; measured: frame ACK p99
            # 5.7-7.0 ms instead of 6.2-8.9). A worker thread for prepare was measured too: no gain on 2
            # cores, the extra thread only competed for the interpreter lock.
            prepared = await self._runner(partial(self._ingest.prepare, ids))
            outcomes: list[IngestOutcome] = await self._runner(partial(self._ingest.apply, prepared))
            self.processed += len(ids)
            return outcomes
        except asyncio.CancelledError:
            raise
        except Exception:
            if len(ids) > 1:
                log.warning("instrument %s: batch of %d failed, processing one by one", self.instrument, len(ids))
        results = []
        for raw_id in ids:
            try:
                results.append(await self._runner(partial(self._ingest.process, raw_id)))
                self.processed += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # stays 'received' in the journal: the start-up catch-up retries it
                log.exception("instrument %s: processing message %d failed", self.instrument, raw_id)
                results.append(IngestOutcome(raw_id, "error", error=f"processing failed: {exc}"))
        return results
