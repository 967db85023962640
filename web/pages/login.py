"""``/login`` (inputs labelled Username / Tên đăng nhập and Password / Mật khẩu) and ``/``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, run, ui

from lis.context import LisContext
from lis.services import audit
from lis.services.users import authenticate
from web import session
from web.i18n import t
from web.layout import header


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/worklist"


def _check(ctx: LisContext, username: str, password: str) -> tuple[str, str, str, str] | str:
    """(username, role, full name, language) or the reason for refusal (the failure count commits)."""
    with ctx.db.write() as db_session:
        user, reason = authenticate(db_session, username, password)
        if user is None:
            audit.record(db_session, username[:64] or "?", "auth.login_failed", "user", username[:64], reason=reason)
            return reason
        audit.record(db_session, user.username, "auth.login", "user", user.username, via="web")
        return user.username, user.role, user.full_name, user.language


def register(ctx: LisContext) -> None:
    @ui.page("/login", title=ctx.config.site.name)
    def login_page(request: Request) -> None:
        lang = session.language(ctx)
        target = _safe_next(request.query_params.get("next", "/worklist"))
        was_expired = bool(app.storage.user.pop("expired", False))
        header(ctx, None, lang, "/login")

        async def try_login() -> None:
            username.error = None if username.value.strip() else t("required", lang)
            password.error = None if password.value else t("required", lang)
            if username.error or password.error:
                return
            button.props("loading")
            outcome = await run.io_bound(_check, ctx, username.value.strip(), password.value)
            button.props(remove="loading")
            if outcome is None:  # the server is stopping
                return
            if isinstance(outcome, str):
                error.set_text(t("login_locked" if "locked" in outcome else "login_failed", lang))
                password.value = ""
                return
            name, role, full_name, user_lang = outcome
            session.login(ctx, name, role, full_name, user_lang)
            ui.navigate.to(target)

        with ui.card().classes("lis-card absolute-center w-96 q-pa-lg"):
            ui.label(t("login", lang)).classes("text-h6 text-primary")
            if was_expired:
                ui.label(t("session_expired", lang)).classes("text-warning").props("data-testid=expired")
            username = ui.input(t("username", lang)).props("autofocus outlined dense name=username").classes(
                "w-full")
            password = ui.input(t("password", lang), password=True).props(
                "outlined dense name=password").classes("w-full")
            password.on("keydown.enter", try_login)
            username.on("keydown.enter", lambda: password.run_method("focus"))
            error = ui.label("").classes("text-negative").props("data-testid=login-error")
            button = ui.button(t("login", lang), on_click=try_login).classes("w-full").props("unelevated")

    @ui.page("/")
    def index() -> RedirectResponse:
        return RedirectResponse("/worklist" if session.current(ctx, touch=False) else "/login")
