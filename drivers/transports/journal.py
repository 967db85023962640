"""Journal-before-acknowledge for every link in the process (group commit), and ordered processing.

ARCHITECTURE.md principle 2 (LIS1-A: journal before the ACK of the last frame; HL7: before MSA AA): a link
awaits :meth:`GroupJournal.journal`, which returns only once the raw bytes are committed durably to the
journal spool (:mod:`lis.services.spool`); then it acknowledges. The writer is one thread that takes every
request waiting at that moment and commits them in ONE transaction: one fsync for ten analysers finishing a
message at the same time instead of ten. Each message is still committed before its own acknowledgement.
The spool is a file of its own, so this commit never waits for result processing or for the database.

:class:`OrderedProcessor` hands the committed entries of one instrument, in arrival order, to the processing
runner (:mod:`lis.services.ingest_worker`: a worker process in the server), which adopts them into the
database's journal and stores their results; it then publishes the events and releases the spool entries.
If the database is unreachable the batch is retried with back-off, in order, while the analysers go on being
acknowledged into the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lis.events import EventBus
from lis.services.ingest_worker import ProcessingRunner
from lis.services.spool import JournalSpool, SpoolEntry, SpoolItem

log = logging.getLogger(__name__)

MAX_BATCH = 256
IDLE_FLUSH_SECONDS = 1.0  # released entries are deleted with the next commit, or after this long idle


@dataclass(slots=True)
class _Request:
    item: SpoolItem
    future: asyncio.Future[SpoolEntry]
    loop: asyncio.AbstractEventLoop


class GroupJournal:
    """One writer thread committing spool entries in batches (see module docstring); ``runner`` is what
    processes them (shared by every instrument's :class:`OrderedProcessor`)."""

    def __init__(self, spool: JournalSpool, runner: ProcessingRunner) -> None:
        self.spool = spool
        self.runner = runner
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._wake = threading.Semaphore(0)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._released: list[int] = []
        self._release_lock = threading.Lock()
        self.batches = 0
        self.entries = 0

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
                self._thread.start()

    async def start(self) -> None:
        """Start the writer thread and the processing runner (a worker process takes a second to start)."""
        self._ensure_thread()
        await self.runner.start()

    async def journal(self, item: SpoolItem) -> SpoolEntry:
        """Commit ``item`` durably; return the spool entry. Raises if the commit failed (then do not ACK)."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SpoolEntry] = loop.create_future()
        self._queue.put(_Request(item, future, loop))
        self._wake.release()
        return await future

    def release(self, entries: list[SpoolEntry]) -> None:
        """The entries' ``raw_message`` rows are durable: delete them from the spool (with the next commit)."""
        with self._release_lock:
            self._released.extend(e.id for e in entries)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._wake.release()
            self._thread.join(timeout=5)
        self._thread = None
        self.runner.close()
        self._delete_released()
        self.spool.close()

    def _take_released(self) -> list[int]:
        with self._release_lock:
            released, self._released = self._released, []
        return released

    def _give_back(self, released: list[int]) -> None:
        with self._release_lock:
            self._released[:0] = released

    def _delete_released(self) -> None:
        released = self._take_released()
        try:
            self.spool.delete(released)
        except Exception as exc:  # harmless: retried later, and adoption is idempotent
            log.warning("spool: %d adopted entries not deleted yet: %s", len(released), exc)
            self._give_back(released)

    def _run(self) -> None:
        while True:
            if not self._wake.acquire(timeout=IDLE_FLUSH_SECONDS):
                self._delete_released()
                continue
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
            if stop:
                return

    def _commit(self, batch: list[_Request]) -> None:
        released = self._take_released()
        try:
            entries = self.spool.append([r.item for r in batch], delete=released)
        except Exception as exc:  # the disk refused: every waiting link NAKs / does not ACK
            self._give_back(released)
            log.error("journal commit of %d message(s) failed: %s", len(batch), exc)
            for r in batch:
                r.loop.call_soon_threadsafe(_set_exception, r.future, exc)
            return
        self.batches += 1
        self.entries += len(batch)
        for r, entry in zip(batch, entries, strict=True):
            r.loop.call_soon_threadsafe(_set_result, r.future, entry)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class OrderedProcessor:
    """Process the spool entries of one instrument in arrival order, off the event loop (module docstring).

    Batches take what queued up while the previous batch was processed (up to :attr:`max_batch`): one
    transaction and one catalogue snapshot for several messages. Nothing here delays an acknowledgement, so
    batches may be larger than when processing shared the journal's writer.
    """

    RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # seconds between attempts while the database is unreachable

    def __init__(self, runner: ProcessingRunner, journal: GroupJournal, bus: EventBus, instrument: str,
                 on_error: Callable[[str], None] | None = None,
                 on_backlog: Callable[[int], None] | None = None) -> None:
        self._runner = runner
        self._journal = journal
        self._bus = bus
        self.instrument = instrument
        self._on_error = on_error or (lambda _text: None)
        self._on_backlog = on_backlog or (lambda _count: None)
        self._queue: asyncio.Queue[SpoolEntry] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.processed = 0
        self._waiting = 0  # submitted, not yet stored (the status board's backlog)
        self.max_batch = 8

    def submit(self, entry: SpoolEntry) -> None:
        """Queue a committed spool entry for adoption (and processing, if it is an analyser message)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"process {self.instrument}")
        self._queue.put_nowait(entry)
        self._waiting += 1

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
                batch.append(self._queue.get_nowait())
            try:
                await self._process(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _process(self, batch: list[SpoolEntry]) -> None:
        """Adopt and store ``batch``; retried with back-off until the database takes it (never dropped: the
        entries stay in the spool, and a stop leaves them for the next start)."""
        delay = self.RETRY_FIRST
        while True:
            try:
                pairs = await self._runner.process(batch)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("instrument %s: %d message(s) not stored yet, retrying in %.1f s: %s", self.instrument,
                          len(batch), delay, exc)
                self._on_error(f"messages not stored yet (kept in the spool, retrying): {exc}")
                self._on_backlog(self._waiting)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.RETRY_MAX)
        self._journal.release(batch)  # adopted: their raw_message rows are durable
        self.processed += len(batch)
        self._waiting -= len(batch)
        if delay != self.RETRY_FIRST or self._waiting == 0:
            self._on_backlog(self._waiting)
        for _outcome, event in pairs:  # after the commit (ARCHITECTURE.md principle 5)
            if event is not None:
                self._bus.publish(event)
