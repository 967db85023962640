"""Wiring the QC service into the running LIS (called by the composition root, ``lis.cli.server``).

``install(ctx, app, runtime)``: builds the :class:`~qc.service.QcService` (one per event bus, i.e. per
LIS context), subscribes it to ``ResultsIngested`` on ``ctx.bus``, mounts the ``/qc`` routes under
``/api/v1`` (the routes reach the service through ``app.state.qc``), and adds the periodic check (catch-up,
due runs, interval holds) to the runtime. Idempotent: calling it again with the same context returns the
same service and never mounts or schedules anything twice. ``lis`` never imports ``qc``; only the
composition root calls this (before the web UI is mounted, so that its catch-all route comes last).
"""

from __future__ import annotations

import weakref
from datetime import timedelta

from fastapi import FastAPI

from lis.api.app import API_PREFIX
from lis.context import LisContext
from lis.events import EventBus
from lis.runtime import Runtime
from qc.api import router
from qc.periodic import QcPeriodicCheck
from qc.service import QcService, QcSettings

_services: weakref.WeakKeyDictionary[EventBus, QcService] = weakref.WeakKeyDictionary()


def service_for(ctx: LisContext) -> QcService | None:
    """The QC service installed for this context (e.g. for the web pages), if any."""
    return _services.get(ctx.bus)


def install(ctx: LisContext, app: FastAPI | None = None, runtime: Runtime | None = None,
            settings: QcSettings | None = None) -> QcService:
    """Create (once), subscribe and mount the QC service; returns it. ``settings`` apply on creation."""
    service = _services.get(ctx.bus)
    if service is None:
        service = QcService(ctx.db, ctx.bus, settings or QcSettings(
            run_window=timedelta(minutes=ctx.config.qc.run_window_minutes),
            check_every=ctx.config.qc.check_every_seconds, timezone=ctx.config.site.timezone))
        service.subscribe()
        _services[ctx.bus] = service
    if app is not None and getattr(app.state, "qc", None) is not service:
        app.state.qc = service
        app.include_router(router, prefix=API_PREFIX)
    if runtime is not None and not any(isinstance(c, QcPeriodicCheck) for c in runtime.components):
        runtime.add(QcPeriodicCheck(service))
    return service
