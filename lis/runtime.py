"""Long-running parts of the LIS (analyser links, EMR outbox, journal catch-up) started with the server.

The composition root collects :class:`Component` objects from ``drivers`` and ``interfaces``; the
server's lifespan starts them after the database is ready and stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lis.services.ingest import IngestService
    from lis.services.spool import JournalSpool

log = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    def __init__(self) -> None:
        self.components: list[Component] = []
        self._started: list[Component] = []

    def add(self, component: Component) -> None:
        self.components.append(component)

    async def start(self) -> None:
        for component in self.components:
            await component.start()
            self._started.append(component)
            log.info("started %s", component.name)

    async def stop(self) -> None:
        while self._started:
            component = self._started.pop()
            try:
                await asyncio.wait_for(component.stop(), timeout=10)
            except Exception:
                log.exception("stopping %s failed", component.name)


class PendingJournalCatchUp:
    """At start-up, finish what a crash or a stop left (ARCHITECTURE.md principle 2): first adopt the entries
    left in the journal spool (acknowledged to an analyser, not yet in the database), then process every
    journal entry committed but not processed. Runs before the analyser links start."""

    name = "journal catch-up"

    def __init__(self, ingest: IngestService, spool: JournalSpool | None = None) -> None:
        self._ingest = ingest
        self._spool = spool

    def _catch_up(self) -> int:
        if self._spool is not None:
            self._ingest.recover_spool(self._spool)
        return self._ingest.process_pending()

    async def start(self) -> None:
        count = await asyncio.to_thread(self._catch_up)
        if count:
            log.info("processed %d journal entries left from the previous run", count)

    async def stop(self) -> None:
        return None
