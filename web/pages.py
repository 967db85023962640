"""Pages: login and the results overview (the validation screens build on these)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi.responses import RedirectResponse
from nicegui import app, ui

from lis.context import LisContext
from lis.services import audit
from lis.services.results import ResultFilter, list_results
from lis.services.users import authenticate
from web.i18n import t


def _lang(ctx: LisContext) -> str:
    return app.storage.user.get("language", ctx.config.site.language)


def register(ctx: LisContext) -> None:
    local = ZoneInfo(ctx.config.site.timezone)

    @ui.page("/login")
    def login_page() -> None:
        lang = _lang(ctx)

        def try_login() -> None:
            with ctx.db.write() as session:
                user, _reason = authenticate(session, username.value.strip(), password.value)
                if user is not None:
                    audit.record(session, user.username, "auth.login", "user", user.username)
            if user is None:
                error.set_text(t("login_failed", lang))
                return
            app.storage.user.update(username=user.username, role=user.role, full_name=user.full_name,
                                    language=user.language)
            ui.navigate.to("/")

        with ui.card().classes("absolute-center w-96"):
            ui.label(ctx.config.site.name).classes("text-h6")
            username = ui.input(t("username", lang)).props("autofocus").classes("w-full")
            password = ui.input(t("password", lang), password=True).classes("w-full").on("keydown.enter", try_login)
            error = ui.label("").classes("text-negative")
            ui.button(t("login", lang), on_click=try_login).classes("w-full")

    @ui.page("/")
    def index() -> RedirectResponse | None:
        if not app.storage.user.get("username"):
            return RedirectResponse("/login")
        lang = _lang(ctx)
        with ui.header().classes("items-center justify-between"):
            ui.label(ctx.config.site.name).classes("text-h6")
            with ui.row().classes("items-center"):
                ui.label(f"{app.storage.user.get('full_name')} ({app.storage.user.get('role')})")

                def switch_language() -> None:
                    app.storage.user["language"] = "en" if lang == "vi" else "vi"
                    ui.navigate.reload()

                def logout() -> None:
                    app.storage.user.clear()
                    ui.navigate.to("/login")

                ui.button(t("language", lang), on_click=switch_language).props("flat color=white")
                ui.button(t("logout", lang), on_click=logout).props("flat color=white")
        columns = [
            {"name": k, "label": t(label, lang), "field": k, "align": "left"}
            for k, label in (("specimen_id", "specimen"), ("patient_name", "patient"), ("test_code", "test"),
                             ("value", "value"), ("units", "unit"), ("reference_range", "range"),
                             ("abnormal_flags", "flags"), ("status", "status"), ("instrument", "instrument"),
                             ("received", "received"))
        ]

        def rows() -> list[dict[str, object]]:
            with ctx.db.read() as session:
                found = list_results(session, ResultFilter(is_qc=False), limit=200)
            fmt = "%d/%m/%Y %H:%M" if lang == "vi" else "%Y-%m-%d %H:%M"
            from datetime import datetime

            for row in found:
                row["received"] = datetime.fromisoformat(str(row["received_at"])).astimezone(local).strftime(fmt)
            return list(reversed(found))

        ui.label(t("results", lang)).classes("text-h5")
        table = ui.table(columns=columns, rows=rows(), row_key="id", pagination=25).classes("w-full")
        table.props(f'no-data-label="{t("no_results", lang)}"')

        def refresh() -> None:
            table.rows = rows()
            table.update()

        ui.button(t("refresh", lang), on_click=refresh)
        ui.timer(5.0, refresh)
        return None
