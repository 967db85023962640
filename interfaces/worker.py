"""The outbox worker (issue 7.1): delivers queued reports in order per patient, with retries and dead letters.

For every destination a sender loop repeatedly takes the *heads* of the queue — per patient, the oldest pending
row — and hands them to ``lanes`` concurrent transports (one connection each). A patient's next report is only
sent once the previous one is delivered or dead, so reports reach the EMR in release order per patient; different
patients proceed in parallel.

* Success (MSA AA / HTTP 2xx): ``delivered``, committed durably before that patient's next report is considered.
* Rejection (AE/AR, OperationOutcome): ``dead`` with the destination's reason; never retried blindly.
* No trustworthy answer (timeout, malformed ACK, HTTP 5xx): retried after an exponential backoff with jitter
  (``base * 2**(n-1)``, capped, times a random factor in ``[1 - jitter, 1]``); ``dead`` after
  ``max_attempts``.
* Connection failures (refused, TLS, unreachable) pause the whole destination with the same backoff, so an
  outage neither burns every message's attempts nor dead-letters a backlog; the head message records the error.

Payloads are built ahead by a prepare loop (:class:`interfaces.prepare.Preparer`), also while a destination
is down. A lane commits each outcome (grouped with the other lanes' into one durable transaction) before it
sends anything else, so at most ``lanes`` acknowledged messages are unrecorded at any time; a crash in that
window re-sends them with the same MSH-10 / Bundle identifier, which the receiver recognises.
On PostgreSQL each destination is served by one process at a time (advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from interfaces.delivery import DeliveryOutcome, Transport
from interfaces.prepare import Preparer
from lis.db import Database
from lis.models import OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxSettings:
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    jitter: float = 0.5
    idle_poll: float = 5.0
    lanes: int = 4
    batch: int = 200
    # payload-building processes (hl7apy and signing are CPU-bound); None: 2 on PostgreSQL, 0 (a thread) on SQLite,
    # whose single writer makes extra writing processes wait on its file lock
    prepare_processes: int | None = None


def backoff_delay(attempt: int, settings: OutboxSettings, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: ``min(cap, base * 2**(attempt-1)) * U(1 - jitter, 1)``."""
    raw = min(settings.backoff_cap, settings.backoff_base * (2 ** max(0, attempt - 1)))
    return raw * (1.0 - settings.jitter * (rng or random).random())


@dataclass
class DestinationRuntime:
    """A destination as the worker serves it."""

    name: str
    kind: str
    max_attempts: int
    transport_factory: Callable[[], Transport]
    blocked_until: datetime | None = None
    failures: int = 0
    transports: list[Transport] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Head:
    id: int
    message_id: str
    attempts: int
    payload: bytes


_Outcome = tuple[_Head, DeliveryOutcome, datetime]


class _GroupCommit:
    """Commits the outcomes of concurrent lanes together; ``add`` returns once its outcome is committed."""

    def __init__(self, record: Callable[[list[_Outcome]], None]) -> None:
        self._record = record
        self._pending: list[tuple[_Outcome, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def add(self, item: _Outcome) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[:]
            del self._pending[: len(batch)]
            try:
                await asyncio.to_thread(self._record, [item for item, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


class OutboxWorker:
    """Runtime component (``lis.runtime.Component``): prepare loop + one sender loop per destination."""

    name = "EMR outbox"

    def __init__(self, db: Database, destinations: list[DestinationRuntime], preparer: Preparer,
                 settings: OutboxSettings | None = None,
                 prepare_pool: Callable[[], Executor] | None = None) -> None:
        self._pool_factory = prepare_pool
        self._pool: Executor | None = None
        self.db = db
        self.destinations = destinations
        self.preparer = preparer
        self.settings = settings or OutboxSettings()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_prepare = asyncio.Event()
        self._wake_send: dict[str, asyncio.Event] = {}
        self._running = False
        self._rng = random.Random()
        self._pg_lock_conns: dict[str, object] = {}

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._wake_prepare = asyncio.Event()
        if self._pool_factory is not None:
            from interfaces.prepare import ready

            self._pool = self._pool_factory()
            loop = asyncio.get_running_loop()  # start the processes now, not on the first release
            await asyncio.gather(*(loop.run_in_executor(self._pool, ready)
                                   for _ in range(self.settings.prepare_processes or 1)))
        self._tasks.append(asyncio.create_task(self._prepare_loop(), name="outbox-prepare"))
        for dest in self.destinations:
            if dest.kind == "signed-report":
                continue
            self._wake_send[dest.name] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._send_loop(dest), name=f"outbox-{dest.name}"))

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for dest in self.destinations:
            for transport in dest.transports:
                await transport.close()
            dest.transports.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for conn in self._pg_lock_conns.values():
            conn.close()  # type: ignore[attr-defined]
        self._pg_lock_conns.clear()

    def wake(self, _event: object = None) -> None:
        """Something was queued or retried: look now (thread-safe; usable as an event-bus handler)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def _set() -> None:
            self._wake_prepare.set()
            for event in self._wake_send.values():
                event.set()

        try:
            if asyncio.get_running_loop() is loop:
                _set()
                return
        except RuntimeError:
            pass
        loop.call_soon_threadsafe(_set)

    # -- preparing -------------------------------------------------------------------------------------
    def _unprepared(self, limit: int) -> list[int]:
        with self.db.read() as session:
            return [i for i in session.exec(
                select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.PENDING,
                                               col(OutboxMessage.payload).is_(None))
                .order_by(col(OutboxMessage.id)).limit(limit)).all() if i is not None]

    async def _prepare_loop(self) -> None:
        while self._running:
            try:
                ids = await asyncio.to_thread(self._unprepared, 100)
                if self._pool is not None:
                    from interfaces.prepare import prepare_in_child

                    loop = asyncio.get_running_loop()
                    futures = [loop.run_in_executor(self._pool, prepare_in_child, row_id) for row_id in ids]
                    for done in asyncio.as_completed(futures):
                        try:
                            await done
                        except Exception:
                            log.exception("building an outbox payload failed")
                        self._wake_senders()
                else:
                    for row_id in ids:
                        await asyncio.to_thread(self.preparer.prepare, row_id)
                        self._wake_senders()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox prepare loop failed; retrying")
                ids = []
                await asyncio.sleep(1)
            if not ids:
                await self._wait(self._wake_prepare, self.settings.idle_poll)

    def _wake_senders(self) -> None:
        for event in self._wake_send.values():
            event.set()

    # -- sending ---------------------------------------------------------------------------------------
    def _heads(self, dest: str, now: datetime, limit: int) -> list[_Head]:
        earlier = aliased(OutboxMessage)
        blocked = exists().where(and_(earlier.destination == OutboxMessage.destination,
                                      earlier.patient_id == OutboxMessage.patient_id,
                                      earlier.status == OutboxStatus.PENDING,
                                      col(earlier.id) < col(OutboxMessage.id)))
        stmt = (
            select(OutboxMessage.id, OutboxMessage.message_id, OutboxMessage.attempts, OutboxMessage.payload)
            .where(OutboxMessage.destination == dest, OutboxMessage.status == OutboxStatus.PENDING,
                   col(OutboxMessage.payload).is_not(None), col(OutboxMessage.next_attempt_at) <= now, ~blocked)
            .order_by(col(OutboxMessage.id)).limit(limit)
        )
        with self.db.read() as session:
            return [_Head(i, m, a, p) for i, m, a, p in session.exec(stmt).all()]

    def _next_due(self, dest: str) -> datetime | None:
        with self.db.read() as session:
            return session.exec(
                select(func.min(OutboxMessage.next_attempt_at)).where(
                    OutboxMessage.destination == dest, OutboxMessage.status == OutboxStatus.PENDING,
                    col(OutboxMessage.payload).is_not(None))).one()

    def _holds_destination(self, dest: DestinationRuntime) -> bool:
        """PostgreSQL: one process per destination (session advisory lock); SQLite: one process by design."""
        if self.db.dialect != "postgresql":
            return True
        if dest.name in self._pg_lock_conns:
            return True
        conn = self.db.engine.raw_connection()
        conn.detach()  # never back to the pool: the session-level lock must end with this connection
        key = zlib.crc32(f"outbox:{dest.name}".encode()) & 0x7FFFFFFF
        cur = conn.cursor()
        cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        got = bool(cur.fetchone()[0])
        conn.commit()
        if got:
            self._pg_lock_conns[dest.name] = conn
        else:
            conn.close()
        return got

    async def _send_loop(self, dest: DestinationRuntime) -> None:
        wake = self._wake_send[dest.name]
        while self._running:
            try:
                if not await asyncio.to_thread(self._holds_destination, dest):
                    await self._wait(wake, self.settings.idle_poll)
                    continue
                now = utcnow()
                if dest.blocked_until is not None and dest.blocked_until > now:
                    await self._wait(wake, (dest.blocked_until - now).total_seconds(), interruptible=False)
                    continue
                heads = await asyncio.to_thread(self._heads, dest.name, now, self.settings.batch)
                if not heads:
                    due = await asyncio.to_thread(self._next_due, dest.name)
                    timeout = self.settings.idle_poll
                    if due is not None:
                        timeout = min(timeout, max(0.0, (due - utcnow()).total_seconds()))
                    await self._wait(wake, timeout)
                    continue
                await self._run_round(dest, heads)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox sender for %s failed; retrying", dest.name)
                await asyncio.sleep(1)

    async def _run_round(self, dest: DestinationRuntime, heads: list[_Head]) -> None:
        queue = deque(heads)
        lanes_n = max(1, min(self.settings.lanes, len(heads)))
        while len(dest.transports) < lanes_n:
            dest.transports.append(dest.transport_factory())
        commit = _GroupCommit(lambda batch: self._record(dest, batch))

        async def lane(transport: Transport) -> None:
            while queue and self._running:
                if dest.blocked_until is not None and dest.blocked_until > utcnow():
                    return
                head = queue.popleft()
                outcome = await transport.send(head.payload, head.message_id)
                # the lane waits for its outcome to be committed (grouped with the other lanes'), so at most
                # ``lanes`` acknowledged messages are ever unrecorded: a crash re-sends at most those
                await commit.add((head, outcome, utcnow()))
                if outcome.destination_down:
                    dest.failures += 1
                    delay = backoff_delay(dest.failures, self.settings, self._rng)
                    dest.blocked_until = utcnow() + timedelta(seconds=delay)
                    log.warning("%s unreachable (%s); pausing %.1f s", dest.name, outcome.detail, delay)
                    return
                if outcome.kind != "retry":
                    dest.failures = 0

        await asyncio.gather(*(lane(t) for t in dest.transports[:lanes_n]))

    def _record(self, dest: DestinationRuntime, batch: list[_Outcome]) -> None:
        with self.db.write() as session:
            for head, outcome, at in batch:
                row = session.get(OutboxMessage, head.id)
                if row is None or row.status != OutboxStatus.PENDING:
                    continue
                row.attempts += 1
                row.last_attempt_at = at
                row.ack_code = outcome.code[:10]
                if outcome.kind == "delivered":
                    row.status, row.delivered_at, row.last_error = OutboxStatus.DELIVERED, at, ""
                    log.info("outbox %s delivered to %s (%s)", row.message_id, dest.name, outcome.code)
                elif outcome.kind == "rejected":
                    row.status, row.last_error = OutboxStatus.DEAD, outcome.detail
                    log.warning("outbox %s rejected by %s: %s", row.message_id, dest.name, outcome.code)
                elif not outcome.destination_down and row.attempts >= dest.max_attempts:
                    row.status = OutboxStatus.DEAD
                    row.last_error = f"gave up after {row.attempts} attempts: {outcome.detail}"
                    log.warning("outbox %s dead after %d attempts", row.message_id, row.attempts)
                else:
                    row.last_error = outcome.detail
                    if not outcome.destination_down:
                        delay = backoff_delay(row.attempts, self.settings, self._rng)
                        row.next_attempt_at = at + timedelta(seconds=delay)
                session.add(row)

    async def _wait(self, event: asyncio.Event, timeout: float, *, interruptible: bool = True) -> None:
        if not interruptible:
            await asyncio.sleep(max(0.0, timeout))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout))
        event.clear()
