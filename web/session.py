"""Browser sessions: who is logged in, the inactivity timeout, and role checks on the server side.

The session lives in ``app.storage.user`` (server-side storage keyed by a signed cookie), so a browser
cannot change its own role. Every page and every action calls :func:`page_user` or :func:`action_user`;
hiding a button is never the only protection. Drafts (e.g. a typed comment) survive an expired session:
logging out clears the identity, not ``drafts``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

from nicegui import app, ui

from lis.context import LisContext
from lis.permissions import allowed
from web.i18n import t

IDENTITY_KEYS = ("username", "role", "full_name", "last_seen")


@dataclass(frozen=True)
class SessionUser:
    username: str
    role: str
    full_name: str

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)


def language(ctx: LisContext) -> str:
    try:
        return str(app.storage.user.get("language") or ctx.config.site.language)
    except RuntimeError:  # no request context (background work)
        return ctx.config.site.language


def login(ctx: LisContext, username: str, role: str, full_name: str, lang: str) -> None:
    app.storage.user.update(username=username, role=role, full_name=full_name, last_seen=time.time())
    app.storage.user.setdefault("language", lang or ctx.config.site.language)


def logout() -> None:
    for key in IDENTITY_KEYS:
        app.storage.user.pop(key, None)


def expired(ctx: LisContext) -> bool:
    last = float(app.storage.user.get("last_seen") or 0)
    return time.time() - last > ctx.config.web.session_minutes * 60


def current(ctx: LisContext, *, touch: bool = True) -> SessionUser | None:
    """The logged-in user, or None (never logged in, or idle longer than ``web.session_minutes``)."""
    storage = app.storage.user
    if not storage.get("username"):
        return None
    if expired(ctx):
        logout()
        storage["expired"] = True
        return None
    if touch:
        storage["last_seen"] = time.time()
    return SessionUser(str(storage["username"]), str(storage["role"]), str(storage.get("full_name") or ""))


def login_url(path: str) -> str:
    return f"/login?next={quote(path, safe='')}"


def action_user(ctx: LisContext, permission: str) -> SessionUser | None:
    """For event handlers: the user if the session is valid and the role may ``permission``; else None
    (after sending the browser to the login page, or telling the user the role may not do it)."""
    user = current(ctx)
    lang = language(ctx)
    if user is None:
        ui.notify(t("session_expired", lang), type="warning")
        ui.navigate.to(login_url(app.storage.user.get("path", "/worklist")))
        return None
    if not user.can(permission):
        ui.notify(t("not_allowed", lang), type="negative")
        return None
    return user


def remember_path(path: str) -> None:
    app.storage.user["path"] = path


def draft(key: str) -> str:
    return str(app.storage.user.get("drafts", {}).get(key, ""))


def save_draft(key: str, text: str) -> None:
    drafts = dict(app.storage.user.get("drafts", {}))
    if text:
        drafts[key] = text
    else:
        drafts.pop(key, None)
    app.storage.user["drafts"] = drafts
