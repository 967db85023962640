"""Login, lock-out, session timeout, roles on every page (server side), language switch."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nicegui import ui
from nicegui.testing.user import User

from tests.web.conftest import login, see, until

pytestmark = pytest.mark.anyio


async def test_pages_need_a_login(new_user: Callable[[], User]) -> None:
    user = new_user()
    for path in ("/worklist", "/critical", "/patients", "/orders", "/qc", "/instruments", "/outbox", "/admin",
                 "/audit", "/dashboard"):
        await user.open(path)
        await see(user, "Tên đăng nhập")
        await see(user, "Mật khẩu")


async def test_wrong_password_then_lock_out(new_user: Callable[[], User]) -> None:
    user = new_user()
    await login(user, "tech", "wrong")
    await see(user, "Sai tên đăng nhập hoặc mật khẩu")
    for _ in range(4):
        await login(user, "tech", "wrong")
        await see(user, "Sai tên đăng nhập hoặc mật khẩu")
    await login(user, "tech")  # the right password no longer helps: locked for 15 minutes
    await see(user, "Tài khoản bị khóa")


async def test_empty_fields_are_named(new_user: Callable[[], User]) -> None:
    user = new_user()
    await user.open("/login")
    user.find(kind=ui.button, content="Đăng nhập").click()
    fields = await until(lambda: [e for e in user.find(kind=ui.input).elements if e.error])
    assert len(fields) == 2 and all(f.error == "Bắt buộc nhập" for f in fields)  # type: ignore[union-attr]


async def test_login_goes_to_the_page_asked_and_html_in_names_is_text(new_user: Callable[[], User]) -> None:
    user = new_user()
    await login(user, "tech", path="/dashboard")
    await see(user, "Tổng quan")
    await user.should_see("<i>tech</i> Nguyễn · Kỹ thuật viên")  # the name, as characters


@pytest.mark.parametrize(("username", "forbidden", "allowed"), [
    ("clin", ["/admin", "/audit", "/instruments", "/outbox"], ["/worklist", "/patients", "/critical"]),
    ("tech", ["/admin", "/audit"], ["/worklist", "/instruments", "/qc", "/orders"]),
    ("mgr", [], ["/admin", "/audit"]),
])
async def test_roles_are_enforced_per_page(new_user: Callable[[], User], username: str, forbidden: list[str],
                                           allowed: list[str]) -> None:
    user = new_user()
    await login(user, username, path="/dashboard")
    await see(user, "Tổng quan")
    for path in forbidden:
        await user.open(path)
        await see(user, "Bạn không có quyền truy cập trang này")
    for path in allowed:
        await user.open(path)
        await user.should_not_see("Bạn không có quyền truy cập trang này")


async def test_language_switch_translates_labels_and_dates(new_user: Callable[[], User]) -> None:
    user = new_user()
    await login(user, "adm", path="/audit")
    await see(user, "Nhật ký hệ thống")
    user.find(kind=ui.button, content="English").click()
    await user.open("/audit")
    await see(user, "Audit log")
    await see(user, "Log out")
    await user.open("/login")
    await see(user, "Username")
    await see(user, "Password")


async def test_expired_session_returns_to_login(new_user: Callable[[], User], monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from web import session

    user = new_user()
    await login(user, "tech", path="/patients")
    await see(user, "Bệnh nhân")
    later = time.time() + 9 * 3600  # web.session_minutes defaults to 480
    monkeypatch.setattr(session.time, "time", lambda: later)
    await user.open("/patients")
    await see(user, "Phiên làm việc đã hết hạn")
