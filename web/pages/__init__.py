"""The pages of the web interface, one module per route (see issue 8 "Routes")."""

from __future__ import annotations

from lis.context import LisContext
from web.pages import admin, audit, critical, dashboard, instruments, login, orders, outbox, patients, qc, worklist


def register(ctx: LisContext) -> None:
    for module in (login, dashboard, worklist, critical, patients, orders, qc, instruments, outbox, admin, audit):
        module.register(ctx)
