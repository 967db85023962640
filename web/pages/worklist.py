"""``/worklist``: the validation worklist — the main screen of the laboratory.

Results waiting for a person, grouped by specimen, paged on the server (lis.services.worklist), with flags
in colour and icon, the previous result and delta, and why autoverification stopped. Actions go through the
result workflow service (``ctx.workflow``), which checks the role, the state and the version again; its
refusals (a conflict "changed by X at T", a QC hold, the two-level rule) are shown as they are.
Keyboard: ↑/↓ move, V validates (technical, or release for a validator), R reruns, C comments, X rejects,
space selects.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nicegui import app, run, ui
from nicegui.events import KeyEventArguments

from lis.context import LisContext
from lis.events import ResultReleased, ResultsIngested
from lis.models import ResultStatus
from lis.services import worklist as wl
from lis.services.result_comments import CommentError, add_comment
from lis.services.results import result_row
from lis.services.workflow import WorkflowError
from web import live, session
from web.i18n import parse_date
from web.layout import Page, lis_page, title
from web.worklist_rows import CSS, TABLE_SLOT, row_dict

PAGE_SIZE = 100
S = ResultStatus


def next_action(status: str) -> str | None:
    """What "validate" means for a result in ``status``: technical validation, then release."""
    if status in (S.PENDING, S.RERUN_REQUESTED):
        return "validate"
    if status in (S.TECHNICALLY_VALIDATED, S.AUTOVERIFIED):
        return "release"
    return None


ACTION_PERMISSION = {"validate": "results:validate", "release": "results:release", "rerun": "results:validate",
                     "reject": "results:validate", "amend": "results:amend"}


class WorklistView:
    def __init__(self, ctx: LisContext, page: Page) -> None:
        self.ctx = ctx
        self.page = page
        technician = page.user.can("results:validate") and not page.user.can("results:release")
        self.default_statuses = wl.TECHNICIAN_STATUSES if technician else wl.OPEN_STATUSES
        self.flt = wl.WorklistFilter(statuses=self.default_statuses)
        self.offset = 0
        self.total = 0
        self.rows: list[dict[str, Any]] = []
        self.cursor: int | None = None
        self.new_count = 0

    # -- building ---------------------------------------------------------------------------------------------
    def build(self) -> None:
        p = self.page
        ui.add_css(CSS)
        with self.ctx.db.read() as db_session:
            sections = wl.sections(db_session)
        with ui.row().classes("w-full items-center justify-between"):
            title(p.t("worklist"))
            self.live_badge = ui.badge("", color="accent").props("data-testid=live-badge")
            self.live_badge.set_visibility(False)
        date_hint = "DD/MM/YYYY" if p.lang == "vi" else "YYYY-MM-DD"
        status_options = {s: p.t("st_" + s) for s in (*wl.OPEN_STATUSES, S.RELEASED)}
        with ui.row().classes("w-full items-start gap-2"):
            self.f_section = ui.select({"": p.t("all")} | {s: s for s in sections}, value="",
                                       label=p.t("section")).props("outlined dense").classes("w-36")
            self.f_instrument = ui.select({"": p.t("all")} | {i.name: i.name for i in self.ctx.config.instruments},
                                          value="", label=p.t("instrument")).props("outlined dense").classes("w-40")
            self.f_priority = ui.select({"": p.t("all"), "stat": p.t("stat"), "routine": p.t("routine")}, value="",
                                        label=p.t("priority")).props("outlined dense").classes("w-32")
            self.f_status = ui.select(status_options, value=list(self.default_statuses), multiple=True,
                                      label=p.t("status")).props("outlined dense options-dense").classes("w-48")
            self.f_status.mark("status-filter")
            self.f_status.props(f'display-value="{len(self.default_statuses)} × {p.t("status").lower()}"')
            self.f_status.on_value_change(lambda e: self.f_status.props(
                f'display-value="{len(e.value or [])} × {p.t("status").lower()}"'))
            self.f_flag = ui.select({"": p.t("all"), "abnormal": p.t("only_flagged"), "critical": p.t("flag_critical"),
                                     "delta": p.t("flag_delta"), "instrument": p.t("flag_instrument")}, value="",
                                    label=p.t("flags")).props("outlined dense").classes("w-36")
            self.f_date = ui.input(p.t("received"), placeholder=date_hint).props("outlined dense clearable").classes(
                "w-32")
            self.f_specimen = ui.input(p.t("specimen")).props("outlined dense clearable").classes("w-32")
            self.f_stat_first = ui.checkbox(p.t("stat_first"), value=True)
            for field in (self.f_section, self.f_instrument, self.f_priority, self.f_status, self.f_flag,
                          self.f_stat_first):
                field.on_value_change(lambda: self.apply_filters())
            self.f_date.on("keydown.enter", lambda: self.apply_filters())
            self.f_date.on("blur", lambda: self.apply_filters())
            self.f_specimen.on("keydown.enter", lambda: self.apply_filters())
        with ui.row().classes("w-full items-center gap-2"):
            can_validate = p.user.can("results:validate") or p.user.can("results:release")
            ui.button(p.t("validate_selected"), icon="done_all", on_click=self.validate_selected).props(
                "unelevated dense no-caps data-testid=validate-selected").set_enabled(can_validate)
            ui.button(p.t("validate_normal"), icon="playlist_add_check", on_click=self.validate_normal).props(
                "outline dense no-caps data-testid=validate-normal").set_enabled(can_validate)
            ui.button(p.t("refresh"), icon="refresh", on_click=self.load).props("flat dense no-caps")
            ui.space()
            ui.label(p.t("keyboard_help")).classes("muted text-caption")
        self.conflict = ui.label("").classes("text-negative text-weight-medium").props("data-testid=conflict")
        self.table = ui.table(columns=self._columns(), rows=[], row_key="id", selection="multiple").props(
            f'dense flat hide-pagination :pagination="{{rowsPerPage: 0}}" no-data-label="{p.t("no_results")}"'
        ).classes("w-full lis-card").props("data-testid=worklist-table").mark("worklist")
        self.table.add_slot("body", TABLE_SLOT)
        self.table.on("cursor", lambda e: self.move_to(int(e.args)))
        self.table.on("act", lambda e: self.on_row_action(int(e.args["id"]), str(e.args["action"])))
        with ui.row().classes("items-center gap-2"):
            ui.button(icon="chevron_left", on_click=lambda: self.turn(-1)).props(
                f'flat dense round aria-label="{p.t("previous_page")}"')
            self.pager = ui.label("").props("data-testid=pager")
            ui.button(icon="chevron_right", on_click=lambda: self.turn(1)).props(
                f'flat dense round aria-label="{p.t("next_page")}"')
        ui.keyboard(on_key=self.on_key)
        self.load()
        live.subscribe(self.ctx.bus, (ResultsIngested, ResultReleased), self.on_events)
        reopen = app.storage.user.pop("reopen_comment", None)
        if reopen is not None:
            self.comment_dialog(int(reopen))

    def _columns(self) -> list[dict[str, object]]:
        p = self.page
        return [{"name": k, "label": p.t(lbl), "field": k, "align": "left"} for k, lbl in (
            ("specimen", "specimen"), ("test", "test"), ("value", "value"), ("range", "range"),
            ("previous", "previous"), ("delta", "delta"), ("flags", "flags"), ("status", "status"),
            ("actions", "action"))]

    # -- data -------------------------------------------------------------------------------------------------
    def apply_filters(self) -> None:
        self.f_date.error = None
        try:
            day = parse_date(self.f_date.value or "", self.page.lang)
        except ValueError:
            self.f_date.error = "DD/MM/YYYY" if self.page.lang == "vi" else "YYYY-MM-DD"
            return
        since = until = None
        if day is not None:
            since = datetime.combine(day, time(0), tzinfo=ZoneInfo(self.page.tz)).astimezone(UTC)
            until = since + timedelta(days=1)
        self.flt = wl.WorklistFilter(
            statuses=tuple(self.f_status.value or self.default_statuses), section=self.f_section.value or "",
            instrument=self.f_instrument.value or "", priority=self.f_priority.value or "",
            flag=self.f_flag.value or "", specimen=(self.f_specimen.value or "").strip(), since=since, until=until,
            stat_first=bool(self.f_stat_first.value))
        self.offset = 0
        self.load()

    def load(self) -> None:
        with self.ctx.db.read() as db_session:
            result = wl.page(db_session, self.flt, offset=self.offset, limit=PAGE_SIZE)
        self.total = result.total
        user = self.page.user
        perms = {a: user.can(perm) for a, perm in ACTION_PERMISSION.items()}
        previous_specimen = None
        rows = []
        for row in result.rows:
            rows.append(row_dict(row, self.page, first=row.specimen != previous_specimen, perms=perms))
            previous_specimen = row.specimen
        self.rows = rows
        ids = [r["id"] for r in rows]
        if self.cursor not in ids:
            self.cursor = ids[0] if ids else None
        for r in rows:
            r["cursor"] = r["id"] == self.cursor
        self.table.rows = rows
        self.rows = self.table.rows  # the table keeps (observable) copies: act on those
        kept = {s["id"] for s in self.table.selected}
        self.table.selected = [r for r in self.rows if r["id"] in kept]
        self.table.update()
        pages = max(1, -(-self.total // PAGE_SIZE))
        self.pager.set_text(self.page.t("page_of", page=self.offset // PAGE_SIZE + 1, pages=pages, total=self.total))

    def turn(self, step: int) -> None:
        new = self.offset + step * PAGE_SIZE
        if 0 <= new < max(self.total, 1):
            self.offset = new
            self.load()

    def on_events(self, events: list[object]) -> None:
        arrived = sum(len(e.result_ids) for e in events if isinstance(e, ResultsIngested))
        if arrived:
            self.new_count += arrived
            self.live_badge.set_text(self.page.t("new_results", n=self.new_count))
            self.live_badge.set_visibility(True)
        self.load()

    # -- cursor and keyboard ----------------------------------------------------------------------------------
    def move_to(self, result_id: int) -> None:
        self.cursor = result_id
        for r in self.rows:
            r["cursor"] = r["id"] == result_id
        self.table.update()

    def current(self) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["id"] == self.cursor), None)

    def on_key(self, e: KeyEventArguments) -> None:
        if not e.action.keydown or e.modifiers.ctrl or e.modifiers.alt or e.modifiers.meta:
            return
        ids = [r["id"] for r in self.rows]
        if not ids:
            return
        index = ids.index(self.cursor) if self.cursor in ids else 0
        if e.key.arrow_down:
            self.move_to(ids[min(index + 1, len(ids) - 1)])
        elif e.key.arrow_up:
            self.move_to(ids[max(index - 1, 0)])
        elif e.key.space:
            row = self.current()
            if row is not None:
                selected = [s for s in self.table.selected if s["id"] != row["id"]]
                if len(selected) == len(self.table.selected):
                    selected.append(row)
                self.table.selected = selected
                self.table.update()
        elif e.key.name in ("v", "V"):
            self.on_row_action(ids[index], "validate")
        elif e.key.name in ("r", "R"):
            self.on_row_action(ids[index], "rerun")
        elif e.key.name in ("c", "C"):
            self.on_row_action(ids[index], "comment")
        elif e.key.name in ("x", "X"):
            self.on_row_action(ids[index], "reject")

    # -- actions ----------------------------------------------------------------------------------------------
    def row(self, result_id: int) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["id"] == result_id), None)

    def on_row_action(self, result_id: int, action: str) -> None:
        self.move_to(result_id)
        row = self.row(result_id)
        if row is None:
            return
        if action == "validate":
            step = next_action(row["status"])
            if step is None:
                ui.notify(row["status_label"], type="warning")
                return
            self.act(row, step)
        elif action == "rerun":
            self.act(row, "rerun")
        elif action == "reject":
            self.reason_dialog(row, "reject")
        elif action == "amend":
            self.reason_dialog(row, "amend")
        elif action == "comment":
            self.comment_dialog(result_id)

    def report_error(self, exc: Exception) -> None:
        message = str(exc)
        self.conflict.set_text(message)
        ui.notify(message, type="negative", multi_line=True, close_button=True, timeout=8000)
        self.load()

    def act(self, row: dict[str, Any], action: str, *, reason: str = "", value: str | None = None) -> bool:
        user = self.page.act(ACTION_PERMISSION[action])
        if user is None:
            return False
        try:
            self.ctx.workflow.act(int(row["id"]), action, int(row["version"]), actor=user.username, role=user.role,
                                  reason=reason, value=value)
        except WorkflowError as exc:
            self.report_error(exc)
            return False
        self.conflict.set_text("")
        ui.notify(f"{self.page.t(action if action != 'release' else 'validate')}: {row['test']} "
                  f"{row['specimen']}", type="positive", timeout=1500)
        self.load()
        return True

    async def run_batch(self, items: list[tuple[int, int, str]]) -> None:
        """``items`` = (id, version, status): pending ones are validated, validated ones released (by role)."""
        user = self.page.act("results:validate") or None
        if user is None:
            return
        groups: dict[str, dict[int, int]] = {}
        for rid, version, status in items:
            step = next_action(status)
            if step == "release" and not user.can("results:release"):
                continue
            if step is not None:
                groups.setdefault(step, {})[rid] = version
        if not groups:
            ui.notify(self.page.t("select_row"), type="warning")
            return
        done, skipped = 0, []
        for step, versions in groups.items():
            try:
                outcome = await run.io_bound(self.ctx.workflow.batch, step, list(versions), actor=user.username,
                                             role=user.role, versions=versions)
            except WorkflowError as exc:
                self.report_error(exc)
                return
            done += len(outcome.done)
            skipped += outcome.skipped
        ui.notify(self.page.t("validated_n", n=done), type="positive" if done else "warning")
        if skipped:
            self.conflict.set_text(f"{len(skipped)} × " + "; ".join(why for _, why in skipped[:3]))
        else:
            self.conflict.set_text("")
        self.table.selected = []
        ui.timer(0.05, self.load, once=True)  # the confirmation paints first, then the 100 rows re-render

    async def validate_selected(self) -> None:
        chosen = [(int(r["id"]), int(r["version"]), str(r["status"])) for r in self.table.selected]
        if not chosen:
            ui.notify(self.page.t("select_row"), type="warning")
            return
        await self.run_batch(chosen)

    async def validate_normal(self) -> None:
        def ids() -> list[tuple[int, int, str]]:
            with self.ctx.db.read() as db_session:
                return wl.normal_ids(db_session, self.flt)

        await self.run_batch(await run.io_bound(ids))

    def reason_dialog(self, row: dict[str, Any], action: str) -> None:
        p = self.page
        with ui.dialog() as dialog, ui.card().classes("q-pa-md").style("width: 460px"):
            ui.label(f"{p.t(action)}: {row['test']} = {row['value']} ({row['specimen']})").classes("text-subtitle1")
            value = None
            if action == "amend":
                value = ui.input(p.t("new_value")).props("outlined dense autofocus data-testid=amend-value").classes(
                    "w-full")
            reason = ui.input(p.t("reason")).props("outlined dense data-testid=reason-input").classes("w-full")
            if action != "amend":
                reason.props("autofocus")

            def submit() -> None:
                reason.error = None
                if not (reason.value or "").strip():
                    reason.error = p.t("required")
                    return
                if value is not None and not (value.value or "").strip():
                    value.error = p.t("required")
                    return
                if self.act(row, action, reason=reason.value.strip(), value=value.value if value else None):
                    dialog.close()

            reason.on("keydown.enter", submit)
            with ui.row().classes("justify-end w-full"):
                ui.button(p.t("cancel"), on_click=dialog.close).props("flat")
                ui.button(p.t(action), on_click=submit).props("unelevated data-testid=reason-submit").props(
                    "color=negative" if action == "reject" else "")
        dialog.open()

    def comment_dialog(self, result_id: int) -> None:
        p = self.page
        with self.ctx.db.read() as db_session:
            found = result_row(db_session, result_id)
        if found is None:
            return
        key = f"comment:{result_id}"
        with ui.dialog() as dialog, ui.card().classes("q-pa-md").style("width: 520px"):
            ui.label(f"{p.t('add_comment')}: {found['test_code']} = {found['value']} "
                     f"({found['specimen_id']})").classes("text-subtitle1")
            text = ui.textarea(p.t("comment"), value=session.draft(key)).props(
                "outlined autofocus data-testid=comment-input").classes("w-full")
            text.on_value_change(lambda e: session.save_draft(key, e.value or ""))

            def submit() -> None:
                text.error = None
                if not (text.value or "").strip():
                    text.error = p.t("required")
                    return
                session.save_draft(key, text.value)
                user = session.current(self.ctx)
                if user is None:  # expired: keep the draft, come back to this dialog after logging in
                    app.storage.user["reopen_comment"] = result_id
                    app.storage.user["expired"] = True
                    ui.navigate.to(session.login_url("/worklist"))
                    return
                if not user.can("results:validate"):
                    ui.notify(p.t("not_allowed"), type="negative")
                    return
                try:
                    with self.ctx.db.write() as db_session:
                        add_comment(db_session, result_id, int(found["version"]), text.value, user.username)
                except CommentError as exc:
                    text.error = str(exc)
                    return
                session.save_draft(key, "")
                dialog.close()
                ui.notify(p.t("saved"), type="positive")
                self.load()

            with ui.row().classes("justify-end w-full"):
                ui.button(p.t("cancel"), on_click=dialog.close).props("flat")
                ui.button(p.t("save"), on_click=submit).props("unelevated data-testid=comment-submit")
        dialog.open()


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/worklist")
    def worklist(page: Page) -> None:
        WorklistView(ctx, page).build()
