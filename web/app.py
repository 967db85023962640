"""The NiceGUI web interface, mounted on the LIS FastAPI app (pages call ``lis`` services only)."""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import app as ui_app
from nicegui import ui

from lis.context import LisContext
from web import pages


def setup(app: FastAPI, ctx: LisContext, *, storage_secret: str) -> None:
    ui_app.state.lis = ctx
    pages.register(ctx)
    ui.run_with(app, title=ctx.config.site.name, storage_secret=storage_secret, mount_path="/",
                show_welcome_message=False, language="vi" if ctx.config.site.language == "vi" else "en-GB",
                reconnect_timeout=10.0)
