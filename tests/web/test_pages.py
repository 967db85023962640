"""Patients, orders and reception, instruments (quarantine, assign), audit chain, admin: page logic."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nicegui import ui
from nicegui.testing.user import User

from lis.context import LisContext
from lis.models import Result, Specimen
from tests.web.conftest import login, see, until
from tests.web.data import order, results

pytestmark = pytest.mark.anyio


async def test_patient_search_is_accent_insensitive_and_shows_cumulative(new_user: Callable[[], User],
                                                                          ctx: LisContext) -> None:
    order(ctx, "P-1", ["GLU"], name="Nông Thị Hoa", national_id="001180099999")
    (rid,) = results(ctx, "P-1", [("GLU", "9.1")])
    ctx.workflow.act(rid, "validate", 2, actor="tech", role="technician")
    user = new_user()
    await login(user, "val", path="/patients")
    await see(user, "Bệnh nhân")
    user.find(kind=ui.input, content="Tìm kiếm").type("nong thi hoa").trigger("keydown.enter")
    await see(user, "Số CCCD: 001180099999")
    table = await until(lambda: [t for t in user.find(kind=ui.table).elements if t.rows and "test" in t.rows[0]])
    assert table[0].rows[0]["test"] == "GLU" and "9.1 H" in table[0].rows[0].values()  # type: ignore[index]
    await user.open("/patients?q=P-1")  # by specimen barcode too
    await see(user, "Số CCCD: 001180099999")


async def test_order_entry_says_what_is_wrong_then_creates_and_receives(new_user: Callable[[], User],
                                                                        ctx: LisContext) -> None:
    user = new_user()
    await login(user, "tech", path="/orders")
    await see(user, "Tạo chỉ định")
    user.find(kind=ui.input, content="Họ tên").type("<b>Đỗ</b> Văn Nam")
    user.find(kind=ui.input, content="Số CCCD").type("12345")
    user.find(kind=ui.button, content="Tạo chỉ định").click()
    cccd = next(iter(user.find(kind=ui.input, content="Số CCCD").elements))
    await until(lambda: cccd.error)
    assert "12 digits" in str(cccd.error)
    with user:
        cccd.value = "001085000123"
        next(iter(user.find(kind=ui.input, content="Mã mẫu").elements)).value = "ORD-1"
        next(iter(user.find(kind=ui.select, content="Xét nghiệm / nhóm xét nghiệm").elements)).value = ["GLU", "ELEC"]
    user.find(kind=ui.button, content="Tạo chỉ định").click()
    await until(lambda: user.notify.contains("Đã tạo chỉ định"))
    user.find(kind=ui.input, content="Quét mã vạch mẫu").type("ORD-1").trigger("keydown.enter")
    await until(lambda: user.notify.contains("Đã nhận mẫu ORD-1"))
    with ctx.db.read() as session:
        from sqlmodel import select

        specimen = session.exec(select(Specimen).where(Specimen.barcode == "ORD-1")).one()
    assert specimen.status == "received"
    user.find(kind=ui.input, content="Quét mã vạch mẫu").type("NOPE").trigger("keydown.enter")
    scan = next(iter(user.find(kind=ui.input, content="Quét mã vạch mẫu").elements))
    await until(lambda: scan.error and "not registered" in str(scan.error))


async def test_unmatched_result_assigned_to_specimen(new_user: Callable[[], User], ctx: LisContext) -> None:
    (unmatched,) = results(ctx, "LATE-1", [("GLU", "6.0")], evaluate=False)
    order(ctx, "LATE-1B", ["GLU"])
    user = new_user()
    await login(user, "tech", path="/instruments")
    await see(user, "Kết quả chưa ghép mẫu")
    rows = await until(lambda: next(iter(user.find(marker="unmatched").elements)).rows)
    user.find(marker="unmatched").trigger("rowClick", [{}, rows[0], 0])  # type: ignore[index]
    await see(user, "Gán vào mẫu: GLU = 6.0 ")
    dialog_input = [e for e in user.find(kind=ui.input, content="Mã mẫu").elements]
    with user:
        dialog_input[-1].value = "LATE-1B"
    user.find(kind=ui.button, content="Gán vào mẫu").click()
    await until(lambda: user.notify.contains("Đã gán vào mẫu LATE-1B"))
    with ctx.db.read() as session:
        stored = session.get(Result, unmatched)
    assert stored is not None and stored.accession == "LATE-1B" and stored.status == "received"


async def test_audit_chain_verification(new_user: Callable[[], User], ctx: LisContext) -> None:
    user = new_user()
    await login(user, "adm", path="/audit")
    await see(user, "Nhật ký hệ thống")
    user.find(kind=ui.button, content="Kiểm tra chuỗi băm").click()
    await see(user, "Chuỗi nhật ký toàn vẹn")
    with ctx.db.write() as session:
        from sqlalchemy import text

        session.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE id = 1"))
    user.find(kind=ui.button, content="Kiểm tra chuỗi băm").click()
    await see(user, "Chuỗi nhật ký bị sửa đổi: event 1 was modified after it was written")


async def test_admin_creates_a_user_and_manager_cannot(new_user: Callable[[], User], ctx: LisContext) -> None:
    admin = new_user()
    await login(admin, "adm", path="/admin")
    await see(admin, "Người dùng")
    admin.find(kind=ui.input, content="Tên đăng nhập").type("ktv2")
    admin.find(kind=ui.input, content="Mật khẩu").type("x")
    admin.find(kind=ui.button, content="Thêm người dùng").click()
    password = next(iter(admin.find(kind=ui.input, content="Mật khẩu").elements))
    await until(lambda: password.error and "at least 4" in str(password.error))
    with admin:
        password.value = "pass-1234"
    admin.find(kind=ui.button, content="Thêm người dùng").click()
    await until(lambda: admin.notify.contains("Đã tạo người dùng ktv2"))
    manager = new_user()
    await login(manager, "mgr", path="/admin")
    await see(manager, "Người dùng")
    await manager.should_not_see("Thêm người dùng")
    manager.find(marker="users").trigger("role", {"username": "ktv2", "role": "admin"})  # forced
    await until(lambda: manager.notify.contains("Vai trò của bạn không được phép thực hiện thao tác này"))
    from lis.services.user_admin import list_users

    with ctx.db.read() as session:
        assert next(u for u in list_users(session) if u.username == "ktv2").role == "technician"


async def test_outbox_shows_deliveries_and_retries_a_dead_letter(new_user: Callable[[], User],
                                                                 ctx: LisContext) -> None:
    from interfaces import outbox
    from lis.models import OutboxMessage

    order(ctx, "OB-1", ["GLU"])
    (rid,) = results(ctx, "OB-1", [("GLU", "5.0")])
    remove = ctx.workflow.add_release_hook(outbox.enqueue_release)
    try:
        ctx.workflow.act(rid, "validate", 2, actor="tech", role="technician")
        ctx.workflow.act(rid, "release", 3, actor="val", role="validator")
    finally:
        remove()
    with ctx.db.write() as session:
        from sqlmodel import select

        row = session.exec(select(OutboxMessage)).first()
        assert row is not None
        row.status, row.last_error, outbox_id = "dead", "AR: unknown patient", row.id
    tech = new_user()
    await login(tech, "tech", path="/outbox")
    await see(tech, "Gửi thất bại: 1")
    rows = await until(lambda: next(iter(tech.find(marker="outbox").elements)).rows)
    assert rows[0]["error"] == "AR: unknown patient" and not rows[0]["can_retry"]  # type: ignore[index]
    tech.find(marker="outbox").trigger("retry", outbox_id)  # forced: refused on the server
    await until(lambda: tech.notify.contains("Vai trò của bạn không được phép"))
    admin = new_user()
    await login(admin, "adm", path="/outbox")
    await see(admin, "Gửi thất bại: 1")
    admin.find(marker="outbox").trigger("retry", outbox_id)
    await until(lambda: admin.notify.contains("Đã thực hiện"))
    with ctx.db.read() as session:
        again = session.get(OutboxMessage, outbox_id)
    assert again is not None and again.status == "pending" and again.attempts == 0


async def test_quarantined_message_viewer_and_reprocess(new_user: Callable[[], User], ctx: LisContext) -> None:
    from lis.services.audit_log import AuditQuery, search

    raw_id = ctx.ingest.journal("xn-1", b"H|\\^&|||x\r\x02garbled \xff<b>not astm</b>\r")
    ctx.ingest.process(raw_id)
    user = new_user()
    await login(user, "tech", path="/instruments")
    await see(user, "Cách ly")
    rows = await until(lambda: next(iter(user.find(marker="quarantine").elements)).rows)
    assert rows[0]["id"] == raw_id and rows[0]["status"] == "error"  # type: ignore[index]
    user.find(marker="quarantine").trigger("rowClick", [{}, rows[0], 0])  # type: ignore[index]
    await see(user, "Dạng hex")
    decoded = next(iter(user.find(marker="raw-decoded").elements))
    assert "<STX>garbled" in decoded.text and "<b>not astm</b>" in decoded.text  # shown as text
    hexed = next(iter(user.find(marker="raw-hex").elements))
    assert "02 67 61 72" in hexed.text
    user.find(kind=ui.button, content="Xử lý lại").click()
    await until(lambda: user.notify.contains("Đã xử lý lại: error"))
    with ctx.db.read() as session:
        assert search(session, AuditQuery(action="raw.reprocess"))[1] == 1


async def test_instruments_page_shows_messages_waiting_in_the_spool(new_user: Callable[[], User],
                                                                    ctx: LisContext) -> None:
    """The database was unreachable: what the analyser sent is acknowledged and waits in the journal spool."""
    ctx.status.set_state("xn-1", "connected", "10.0.0.5:4001")
    ctx.status.backlog("xn-1", 7)
    ctx.status.error("xn-1", "messages not stored yet (kept in the spool, retrying): connection refused")
    user = new_user()
    await login(user, "tech", path="/instruments")
    await see(user, "Chờ lưu vào CSDL: 7")
    await see(user, "kept in the spool")
    ctx.status.backlog("xn-1", 0)  # stored: the line goes away at the next refresh

    def gone() -> bool:
        try:
            return not user.find(marker="backlog-xn-1").elements
        except AssertionError:  # nothing with that marker on the page
            return True

    await until(gone, timeout=10)
