"""Long-running parts of the LIS (analyser links, EMR outbox, journal catch-up) started with the server.

The composition root collects :class:`Component` objects from ``drivers`` and ``interfaces``; the
server's lifespan starts them after the database is ready and stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

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
    """At start-up, finish journal entries committed but not processed before a crash (ARCHITECTURE 2)."""

    name = "journal catch-up"

    def __init__(self, process_pending: Callable[[], int]) -> None:
        self._process_pending = process_pending

    async def start(self) -> None:
        count = await asyncio.to_thread(self._process_pending)
        if count:
            log.info("processed %d journal entries left from the previous run", count)

    async def stop(self) -> None:
        return None
