"""Wiring for the composition root: subscribe evaluation to the bus and catch up at start-up.

``runtime.add(wire_workflow(ctx))`` in ``lis/cli/server.py`` ``build_runtime`` is all it takes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lis.services.workflow.service import WorkflowService

if TYPE_CHECKING:
    from lis.context import LisContext

log = logging.getLogger(__name__)


class EvaluationCatchUp:
    """Runtime component: at start-up, evaluate patient results still ``received`` (ARCHITECTURE 5: a
    listener that missed an event catches up from the tables)."""

    name = "result evaluation catch-up"

    def __init__(self, workflow: WorkflowService) -> None:
        self.workflow = workflow

    async def start(self) -> None:
        count = await asyncio.to_thread(self.workflow.evaluate_received)
        if count:
            log.info("evaluated %d results left received from the previous run", count)

    async def stop(self) -> None:
        return None


def wire_workflow(ctx: LisContext) -> EvaluationCatchUp:
    """Subscribe ``ctx.workflow`` to ``ResultsIngested`` and return the start-up catch-up component."""
    ctx.workflow.subscribe()
    return EvaluationCatchUp(ctx.workflow)
