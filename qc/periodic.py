"""The QC periodic check, a runtime Component (like ``lis.runtime.PendingJournalCatchUp``).

At start, and then every ``check_every`` seconds, it catches up QC results stored but never put into a run
(an event missed by a crash or a failed handler; the tables are the source of truth), evaluates runs
whose window has passed (a level never came) and opens ``no_qc_in_interval`` holds where no accepted run
came within the interval (fail closed, see ``lis.services.qc_holds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from qc.service import QcService

log = logging.getLogger(__name__)


class QcPeriodicCheck:
    """Async start/stop component running :meth:`tick` in a worker thread."""

    name = "qc periodic check"

    def __init__(self, service: QcService, every: float | None = None) -> None:
        self.service = service
        self.every = every if every is not None else service.settings.check_every
        self._task: asyncio.Task[None] | None = None

    def tick(self) -> None:
        """One check: QC results missed by the event handler, due runs, then interval holds."""
        caught = self.service.catch_up()
        closed = self.service.close_due_runs()
        opened = self.service.check_intervals()
        if caught or closed or opened:
            log.info("QC check: %d observation(s) caught up, %d run(s) closed, %d interval hold(s) opened",
                     caught, len(closed), len(opened))

    async def start(self) -> None:
        count = await asyncio.to_thread(self.service.catch_up)
        if count:
            log.info("QC catch-up: %d observation(s) put into runs", count)
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a failing check is logged and retried at the next period
                log.exception("QC periodic check failed")
            await asyncio.sleep(self.every)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
