"""The validation worklist: grouping, flags, actions through the workflow service, conflicts, roles, live
updates, drafts that survive an expired session."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing.user import User

from lis.context import LisContext
from lis.models import Result
from lis.services.results import result_row
from lis.services.worklist import OPEN_STATUSES
from tests.web.conftest import login, see, until
from tests.web.data import order, results

pytestmark = pytest.mark.anyio


def table_rows(user: User) -> list[dict[str, Any]]:
    try:
        tables = list(user.find(marker="worklist").elements)
    except AssertionError:  # the page is not open (yet)
        return []
    return tables[0].rows if tables else []


def status_of(ctx: LisContext, result_id: int) -> str:
    with ctx.db.read() as session:
        row = result_row(session, result_id)
    assert row is not None
    return str(row["status"])


async def act(user: User, result_id: int, action: str) -> None:
    user.find(marker="worklist").trigger("act", {"id": result_id, "action": action})


async def test_rows_grouped_by_specimen_with_flags_previous_and_stat_first(
        new_user: Callable[[], User], ctx: LisContext) -> None:
    order(ctx, "S-OLD", ["GLU"], name="<b>Nông</b> Thị Hoa", national_id="001190000001")
    first = results(ctx, "S-OLD", [("GLU", "5.0")])
    order(ctx, "S-1", ["GLU", "K", "NA"], name="<b>Nông</b> Thị Hoa", national_id="001190000001")
    order(ctx, "S-STAT", ["GLU"], priority="stat", name="Lê Văn Tám")
    ids = results(ctx, "S-1", [("GLU", "9.8"), ("K", "7.5"), ("NA", "140")])
    results(ctx, "S-STAT", [("GLU", "5.5")])
    user = new_user()
    await login(user, "tech")
    await see(user, "Danh sách duyệt kết quả")
    rows = await until(lambda: table_rows(user))
    assert rows[0]["specimen"] == "S-STAT" and rows[0]["stat"]  # type: ignore[index]
    by_id = {r["id"]: r for r in rows}  # type: ignore[union-attr]
    glu, k, na = (by_id[i] for i in ids)
    assert glu["first"] and not k["first"] and not na["first"]
    assert glu["patient"] == "<b>Nông</b> Thị Hoa"  # text, rendered by Vue interpolation (escaped)
    assert [f["code"] for f in glu["flag_list"]] == ["H"] and glu["value_class"] == "flag-H"
    assert k["flag_list"][0]["code"] == "critical" and k["value_class"] == "flag-crit"
    assert na["flag_list"] == []
    assert glu["previous"] == "5.0" and glu["delta"] == "+4.8"
    assert glu["why"]  # the reasons autoverification stopped
    assert first[0] in by_id  # the older specimen's result is still pending, on the list
    await see(user, "Trang 1 / 1")


async def test_two_level_validation_and_roles(new_user: Callable[[], User], ctx: LisContext) -> None:
    order(ctx, "S-2", ["GLU"])
    (rid,) = results(ctx, "S-2", [("GLU", "5.2")])
    tech = new_user()
    await login(tech, "tech")
    await until(lambda: table_rows(tech))
    await act(tech, rid, "validate")
    await until(lambda: status_of(ctx, rid) == "technically_validated")
    await until(lambda: not table_rows(tech))  # a technician's list: what still needs technical validation
    with tech:
        next(iter(tech.find(marker="status-filter").elements)).value = list(OPEN_STATUSES)
    await until(lambda: table_rows(tech) and table_rows(tech)[0]["status"] == "technically_validated")
    await act(tech, rid, "validate")  # for a technician the next step (release) is not allowed
    assert tech.notify.contains("Vai trò của bạn không được phép thực hiện thao tác này")
    assert status_of(ctx, rid) == "technically_validated"
    clinician = new_user()
    await login(clinician, "clin")
    await until(lambda: table_rows(clinician))
    assert table_rows(clinician)[0]["action_list"] == []  # hidden...
    await act(clinician, rid, "reject")  # ...and refused by the server when forced
    assert status_of(ctx, rid) == "technically_validated"
    validator = new_user()
    await login(validator, "val")
    await until(lambda: table_rows(validator))
    await act(validator, rid, "validate")
    await until(lambda: status_of(ctx, rid) == "released")


async def test_conflict_is_shown_with_who_changed_it(new_user: Callable[[], User], ctx: LisContext) -> None:
    order(ctx, "S-3", ["GLU"])
    (rid,) = results(ctx, "S-3", [("GLU", "5.2")])
    first, second = new_user(), new_user()
    await login(first, "tech")
    await until(lambda: table_rows(first))
    await login(second, "val")
    await until(lambda: table_rows(second))
    await act(second, rid, "validate")
    await until(lambda: status_of(ctx, rid) == "technically_validated")
    await act(first, rid, "rerun")  # first still shows version 1
    await see(first, "was changed by val")
    assert status_of(ctx, rid) == "technically_validated"


async def test_reject_needs_a_reason_and_batch_validates_normal_only(new_user: Callable[[], User],
                                                                      ctx: LisContext) -> None:
    order(ctx, "S-4", ["GLU", "NA", "K"])
    glu, na, k = results(ctx, "S-4", [("GLU", "5.0"), ("NA", "140"), ("K", "9.9")])
    user = new_user()
    await login(user, "tech")
    await until(lambda: table_rows(user))
    await act(user, k, "reject")
    await see(user, "Lý do")
    user.find(kind=ui.button, marker=None, content="Loại bỏ").click()
    await see(user, "Bắt buộc nhập")
    user.find(kind=ui.input, content="Lý do").type("haemolysed specimen")
    user.find(kind=ui.button, content="Loại bỏ").click()
    await until(lambda: status_of(ctx, k) == "rejected")
    user.find(kind=ui.button, content="Duyệt tất cả kết quả bình thường").click()
    await until(lambda: status_of(ctx, glu) == "technically_validated" and status_of(ctx, na) ==
                "technically_validated")


async def test_new_results_appear_live(new_user: Callable[[], User], ctx: LisContext) -> None:
    user = new_user()
    await login(user, "tech")
    await see(user, "Trang 1 / 1 — 0 dòng")
    order(ctx, "S-LIVE", ["GLU"])
    ctx.workflow.subscribe()  # as the running LIS does: evaluation on ResultsIngested
    try:
        results(ctx, "S-LIVE", [("GLU", "5.1")], evaluate=False)
        await until(lambda: any(r["specimen"] == "S-LIVE" for r in table_rows(user)))
        await see(user, "Có 1 kết quả mới")
    finally:
        ctx.workflow.unsubscribe()


async def test_typed_comment_survives_an_expired_session(new_user: Callable[[], User], ctx: LisContext,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from web import session

    order(ctx, "S-5", ["GLU"])
    (rid,) = results(ctx, "S-5", [("GLU", "5.0")])
    user = new_user()
    await login(user, "tech")
    await until(lambda: table_rows(user))
    await act(user, rid, "comment")
    await see(user, "Ghi chú")
    user.find(kind=ui.textarea).type("<script>alert(1)</script> mẫu đục")
    later = time.time() + 9 * 3600
    monkeypatch.setattr(session.time, "time", lambda: later)
    user.find(kind=ui.button, content="Lưu").click()
    await see(user, "Phiên làm việc đã hết hạn")
    monkeypatch.undo()
    await login(user, "tech")
    await see(user, "Thêm ghi chú")  # the dialog opens again with the draft
    area = await until(lambda: list(user.find(kind=ui.textarea).elements))
    assert area[0].value == "<script>alert(1)</script> mẫu đục"  # type: ignore[index]
    user.find(kind=ui.button, content="Lưu").click()
    await until(lambda: any("mẫu đục" in r["comment"] for r in table_rows(user)))
    with ctx.db.read() as s:
        stored = s.get(Result, rid)
        assert stored is not None and stored.comment == "[tech] <script>alert(1)</script> mẫu đục"


def press(user: User, key: str, code: str) -> None:
    user.find(kind=ui.keyboard).trigger("key", {"action": "keydown", "repeat": False, "altKey": False,
                                                "ctrlKey": False, "metaKey": False, "shiftKey": False,
                                                "key": key, "code": code, "location": 0})


async def test_keyboard_moves_validates_and_reruns(new_user: Callable[[], User], ctx: LisContext) -> None:
    order(ctx, "S-KEY", ["GLU", "NA", "K"])
    glu, na, k = results(ctx, "S-KEY", [("GLU", "5.0"), ("NA", "140"), ("K", "4.0")])
    user = new_user()
    await login(user, "tech")
    await until(lambda: len(table_rows(user)) == 3)
    assert table_rows(user)[0]["cursor"]
    press(user, "ArrowDown", "ArrowDown")
    assert table_rows(user)[1]["cursor"] and not table_rows(user)[0]["cursor"]
    press(user, "v", "KeyV")  # validates the row under the cursor (NA)
    await until(lambda: status_of(ctx, na) == "technically_validated")
    press(user, "ArrowUp", "ArrowUp")
    press(user, "r", "KeyR")  # reruns GLU
    await until(lambda: status_of(ctx, glu) == "rerun_requested")
    assert status_of(ctx, k) == "pending"


async def test_amend_after_release_needs_value_and_reason(new_user: Callable[[], User], ctx: LisContext) -> None:
    order(ctx, "S-AM", ["GLU"])
    (rid,) = results(ctx, "S-AM", [("GLU", "5.0")])
    ctx.workflow.act(rid, "validate", 2, actor="tech", role="technician")
    ctx.workflow.act(rid, "release", 3, actor="val", role="validator")
    user = new_user()
    await login(user, "val2")
    await see(user, "Danh sách duyệt kết quả")
    with user:
        next(iter(user.find(marker="status-filter").elements)).value = ["released"]
    await until(lambda: table_rows(user) and table_rows(user)[0]["id"] == rid)
    assert [a["action"] for a in table_rows(user)[0]["action_list"]] == ["amend"]
    await act(user, rid, "amend")
    await see(user, "Giá trị mới")
    user.find(kind=ui.input, content="Giá trị mới").type("5.4")
    user.find(kind=ui.button, content="Sửa kết quả").click()
    await see(user, "Bắt buộc nhập")  # the reason
    user.find(kind=ui.input, content="Lý do").type("transcription error")
    user.find(kind=ui.button, content="Sửa kết quả").click()
    await until(lambda: status_of(ctx, rid) == "amended")
    await until(lambda: any(r["value"] == "5.4" and r["status"] == "released" for r in table_rows(user)))
