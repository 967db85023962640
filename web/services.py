"""Services the pages need beyond ``ctx``: the QC service that ``qc.wiring.install`` put on the LIS app."""

from __future__ import annotations

import threading
from typing import Any

from nicegui import app as ui_app

from lis.context import LisContext

_lock = threading.Lock()
_fallback: dict[int, Any] = {}


def remember_lis_app(lis_app: Any) -> None:
    ui_app.state.lis_app = lis_app


def qc_service(ctx: LisContext) -> Any:
    """The running QcService (``app.state.qc`` of the LIS FastAPI app); without one (tests, or QC not
    installed) a service on the same database and bus: corrective actions and manual entries are plain
    transactions, and its history cache rebuilds itself from the tables."""
    lis_app = getattr(ui_app.state, "lis_app", None)
    service = getattr(getattr(lis_app, "state", None), "qc", None)
    if service is not None:
        return service
    from qc.service import QcService

    with _lock:
        if id(ctx) not in _fallback:
            _fallback[id(ctx)] = QcService(ctx.db, ctx.bus)
        return _fallback[id(ctx)]
