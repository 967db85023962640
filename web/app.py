"""The NiceGUI web interface, mounted on the LIS FastAPI app (pages call ``lis``/``qc`` services only)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from nicegui import app as ui_app
from nicegui import ui
from nicegui.storage import Storage

from lis.context import LisContext
from web import pages
from web.services import remember_lis_app


def setup(app: FastAPI, ctx: LisContext, *, storage_secret: str) -> None:
    """Register every page and mount NiceGUI at ``/`` of the LIS app (``/api/v1`` stays the REST API).

    Call it after every other router is included: NiceGUI is mounted at ``/`` and shadows routes added later.
    Browser sessions (who is logged in, drafts) are kept server-side in ``<data_dir>/web-sessions``.
    """
    if "NICEGUI_STORAGE_PATH" not in os.environ:
        Storage.path = (Path(ctx.config.data_dir) / "web-sessions").resolve()
    ui_app.state.lis = ctx
    remember_lis_app(app)
    pages.register(ctx)
    ui.run_with(app, title=ctx.config.site.name, storage_secret=storage_secret, mount_path="/",
                show_welcome_message=False, language="vi" if ctx.config.site.language == "vi" else "en-GB",
                reconnect_timeout=10.0, favicon="🧪")
