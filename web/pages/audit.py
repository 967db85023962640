"""``/audit``: the audit log with filters (actor, action, entity, dates), paging and chain verification."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from nicegui import run, ui

from lis.context import LisContext
from lis.services import audit
from lis.services.audit_log import AuditQuery, actions, search
from web.i18n import parse_date
from web.layout import Page, lis_page, title

PAGE_SIZE = 50


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/audit")
    def audit_page(page: Page) -> None:
        title(page.t("audit"))
        state = {"offset": 0, "total": 0}
        with ctx.db.read() as session:
            known_actions = actions(session)
        date_hint = "DD/MM/YYYY" if page.lang == "vi" else "YYYY-MM-DD"
        with ui.row().classes("w-full items-start gap-2"):
            actor = ui.input(page.t("actor")).props("outlined dense clearable").classes("w-40")
            action = ui.select(known_actions, label=page.t("action"), with_input=True, clearable=True).props(
                "outlined dense").classes("w-56")
            entity = ui.input(page.t("entity"), placeholder="result / 42").props("outlined dense clearable").classes(
                "w-40")
            since = ui.input(page.t("date_from"), placeholder=date_hint).props("outlined dense clearable").classes(
                "w-36")
            until = ui.input(page.t("date_to"), placeholder=date_hint).props("outlined dense clearable").classes(
                "w-36")
            ui.button(page.t("search"), icon="search", on_click=lambda: load(reset=True)).props("unelevated")
            ui.button(page.t("verify_chain"), icon="verified", on_click=lambda: verify()).props(
                "outline data-testid=verify-chain")
        verdict = ui.label("").props("data-testid=chain-verdict")
        columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
            ("id", "details"), ("at", "time"), ("actor", "actor"), ("action", "action"), ("entity", "entity"),
            ("detail", "details"))]
        columns[0]["label"] = "#"
        table = ui.table(columns=columns, rows=[], row_key="id").props(
            f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full lis-card")
        table.add_slot("body-cell-detail", '''<q-td :props="props" style="max-width: 520px; white-space: normal;
            font-family: monospace; font-size: 11px">{{ props.value }}</q-td>''')
        with ui.row().classes("items-center gap-2"):
            ui.button(icon="chevron_left", on_click=lambda: move(-1)).props("flat dense round")
            pager = ui.label("")
            ui.button(icon="chevron_right", on_click=lambda: move(1)).props("flat dense round")

        def bounds(field: ui.input, shift: int) -> datetime | None:
            field.error = None
            try:
                day = parse_date(field.value or "", page.lang)
            except ValueError:
                field.error = date_hint
                raise
            if day is None:
                return None
            return (datetime.combine(day, time(0), tzinfo=ZoneInfo(page.tz)) + timedelta(days=shift)).astimezone(UTC)

        def load(reset: bool = False) -> None:
            if reset:
                state["offset"] = 0
            try:
                start, end = bounds(since, 0), bounds(until, 1)
            except ValueError:
                return
            entity_type, _, entity_id = (entity.value or "").partition("/")
            query = AuditQuery(actor=(actor.value or "").strip(), action=action.value or "",
                               entity_type=entity_type.strip(), entity_id=entity_id.strip(), since=start, until=end)
            with ctx.db.read() as session:
                events, state["total"] = search(session, query, limit=PAGE_SIZE, offset=state["offset"])
            table.rows = [{"id": e.id, "at": page.dt(e.at, seconds=True), "actor": e.actor, "action": e.action,
                           "entity": f"{e.entity_type} {e.entity_id}".strip(), "detail": e.detail} for e in events]
            table.update()
            pages = max(1, -(-state["total"] // PAGE_SIZE))
            pager.set_text(page.t("page_of", page=state["offset"] // PAGE_SIZE + 1, pages=pages, total=state["total"]))

        def move(step: int) -> None:
            new = state["offset"] + step * PAGE_SIZE
            if 0 <= new < max(state["total"], 1):
                state["offset"] = new
                load()

        async def verify() -> None:
            if page.act("audit:read") is None:
                return

            def check() -> audit.ChainReport:
                with ctx.db.read() as session:
                    return audit.verify_chain(session)

            report = await run.io_bound(check)
            if report.ok:
                verdict.set_text(page.t("chain_ok", n=report.events))
                verdict.classes(replace="text-positive text-weight-bold")
            else:
                verdict.set_text(page.t("chain_bad", r=report.reason))
                verdict.classes(replace="text-negative text-weight-bold")

        load()
