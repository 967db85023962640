"""The frame every page shares: header (site, user, language, log out), navigation drawer, role guard.

``lis_page`` registers a route whose body runs only for a logged-in user whose role holds the page's
permission (checked on the server for every request); otherwise it redirects to ``/login`` or shows
"not allowed".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui

from lis.context import LisContext
from web import session
from web.i18n import fmt_date, fmt_datetime, t

NAV: tuple[tuple[str, str, str, str], ...] = (  # path, text key, icon, permission
    ("/dashboard", "nav_dashboard", "space_dashboard", "results:read"),
    ("/worklist", "nav_worklist", "fact_check", "results:read"),
    ("/critical", "nav_critical", "priority_high", "results:read"),
    ("/patients", "nav_patients", "person_search", "patients:read"),
    ("/orders", "nav_orders", "assignment", "orders:read"),
    ("/qc", "nav_qc", "query_stats", "qc:read"),
    ("/instruments", "nav_instruments", "lan", "instruments:read"),
    ("/outbox", "nav_outbox", "outbox", "instruments:read"),
    ("/admin", "nav_admin", "admin_panel_settings", "catalog:write"),
    ("/audit", "nav_audit", "history", "audit:read"),
)
PAGE_PERMISSION = {path: perm for path, _, _, perm in NAV}

CSS = """
body { background: #f5f7fa; }
.lis-card { background: white; border: 1px solid #e1e6ed; border-radius: 6px; }
.q-table th { font-weight: 600; color: #425466; background: #f0f3f7; }
.q-table tbody tr.selected td { background: #e3efff !important; }
.flag-H { color: #b45309; font-weight: 600; } .flag-L { color: #1d4ed8; font-weight: 600; }
.flag-crit { color: #fff; background: #b91c1c; border-radius: 3px; padding: 0 4px; font-weight: 700; }
.muted { color: #6b7785; }
pre.raw { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
"""


@dataclass
class Page:
    """What a page body gets: the LIS context, the user, the language and helpers to format for them."""

    ctx: LisContext
    user: session.SessionUser
    lang: str
    request: Request

    def t(self, key: str, **values: object) -> str:
        return t(key, self.lang, **values)

    def dt(self, value: object, *, seconds: bool = False) -> str:
        return fmt_datetime(value, self.lang, self.ctx.config.site.timezone, seconds=seconds)  # type: ignore[arg-type]

    def d(self, value: object) -> str:
        return fmt_date(value, self.lang)  # type: ignore[arg-type]

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    @cached_property
    def tz(self) -> str:
        return self.ctx.config.site.timezone

    def act(self, permission: str) -> session.SessionUser | None:
        """Check, at the time of the action, that the session is valid and the role may do it."""
        return session.action_user(self.ctx, permission)


def header(ctx: LisContext, user: session.SessionUser | None, lang: str, current: str) -> None:
    ui.colors(primary="#2f5d8a", secondary="#5b7083", accent="#0f766e", positive="#15803d",
              negative="#b91c1c", warning="#b45309")
    ui.add_css(CSS)
    with ui.header(elevated=False).classes("items-center justify-between px-4 py-1 bg-primary"):
        with ui.row().classes("items-center gap-2"):
            if user is not None:
                ui.button(icon="menu", on_click=lambda: drawer.toggle()).props("flat dense round color=white")
            ui.icon("biotech").classes("text-2xl")
            ui.label(ctx.config.site.name).classes("text-subtitle1 text-weight-medium")
        with ui.row().classes("items-center gap-1"):
            if user is not None:
                ui.icon("account_circle")
                ui.label(f"{user.full_name} · {t('role_' + user.role, lang)}").classes("text-body2").props(
                    "data-testid=current-user")

            def switch_language() -> None:
                app.storage.user["language"] = "en" if lang == "vi" else "vi"
                ui.navigate.reload()

            ui.button(t("switch_language", lang), icon="translate", on_click=switch_language).props(
                "flat dense no-caps color=white data-testid=switch-language")
            if user is not None:

                def do_logout() -> None:
                    session.logout()
                    ui.navigate.to("/login")

                ui.button(t("logout", lang), icon="logout", on_click=do_logout).props(
                    "flat dense no-caps color=white")
    if user is None:
        return
    with ui.left_drawer(value=True, bordered=True).props("width=240 breakpoint=900").classes(
            "bg-white q-pa-none") as drawer, ui.list().props("dense").classes("w-full"):
        for path, key, icon, permission in NAV:
            if not user.can(permission):
                continue
            active = path == current
            with ui.item(on_click=lambda p=path: ui.navigate.to(p)).props(
                    f"clickable {'active' if active else ''} active-class=bg-blue-1").classes(
                    "text-primary" if active else "text-grey-9"):
                with ui.item_section().props("avatar"):
                    ui.icon(icon)
                ui.item_section(t(key, lang)).classes("text-no-wrap")


def session_watch(ctx: LisContext, path: str) -> None:
    """Send the browser back to the login page when the session expires while the page is open."""

    def check() -> None:
        if session.expired(ctx) or not app.storage.user.get("username"):
            app.storage.user["expired"] = True
            session.logout()
            ui.navigate.to(session.login_url(path))

    ui.timer(30.0, check)


def lis_page(ctx: LisContext, path: str, permission: str | None = None) -> Callable[[Callable[[Page], None]],
                                                                                  Callable[..., object]]:
    permission = permission or PAGE_PERMISSION[path]

    def decorator(body: Callable[[Page], None]) -> Callable[..., object]:
        async def route(request: Request) -> RedirectResponse | None:
            user = session.current(ctx)
            if user is None:
                return RedirectResponse(session.login_url(str(request.url.path) + (
                    f"?{request.url.query}" if request.url.query else "")))
            lang = session.language(ctx)
            session.remember_path(path)
            header(ctx, user, lang, path)
            session_watch(ctx, path)
            with ui.column().classes("w-full q-pa-md gap-3"):
                if not user.can(permission):
                    with ui.card().classes("lis-card w-full"):
                        ui.label(t("forbidden", lang)).classes("text-negative text-h6").props(
                            "data-testid=forbidden")
                    return None
                body(Page(ctx, user, lang, request))
            return None

        route.__name__ = body.__name__
        ui.page(path, title=f"{ctx.config.site.name}")(route)
        return route

    return decorator


def title(text: str, *extra: str) -> None:
    with ui.row().classes("items-baseline gap-3"):
        ui.label(text).classes("text-h6 text-weight-medium text-grey-9")
        for item in extra:
            ui.label(item).classes("muted")
