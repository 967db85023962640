"""Fixtures of the result-workflow tests: the workflow subscribed to the bus, users."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lis.context import LisContext
from lis.services.workflow import WorkflowService
from lis.services.workflow.wiring import wire_workflow


@pytest.fixture
def wf(ctx: LisContext) -> Iterator[WorkflowService]:
    """``ctx.workflow`` evaluating every ingested result, as ``lis serve`` wires it."""
    wire_workflow(ctx)
    yield ctx.workflow
    ctx.workflow.unsubscribe()
