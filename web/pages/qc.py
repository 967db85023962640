"""``/qc``: QC dashboard — status per instrument × analyte, Levey-Jennings charts per lot (mean, ±1/2/3 SD,
violations marked and named), open holds with corrective action, manual QC entry, lots/targets and rule sets
with the sigma proposal. Everything goes through ``qc`` (service, status, levey_jennings, setup)."""

from __future__ import annotations

from typing import Any

from nicegui import run, ui

from lis.context import LisContext
from lis.models import utcnow
from lis.services import qc_view
from qc import setup as qc_setup
from qc.errors import QcConflict, QcNotFound
from qc.levey_jennings import levey_jennings
from qc.model import QcInputError
from qc.status import qc_status
from web.i18n import tr
from web.layout import Page, lis_page, title
from web.services import qc_service

STATUS_COLOR = {"accepted": "positive", "warning": "warning", "rejected": "negative", "held": "brown-6",
                "no_qc": "grey"}
QC_ERRORS = (QcInputError, QcNotFound, QcConflict)


def lj_options(data: dict[str, Any], page: Page) -> dict[str, Any]:
    """ECharts options: points (violations red and named), mean and ±1/2/3 SD lines."""
    points = data["points"]
    lines = data.get("lines") or {}
    values = []
    for p in points:
        if p["value"] is None:
            continue
        item: dict[str, Any] = {"value": [page.dt(p["time"], seconds=True), p["value"]]}
        if p["rules"]:
            item["itemStyle"] = {"color": "#b91c1c"}
            item["symbolSize"] = 11
            item["label"] = {"show": True, "formatter": ", ".join(p["rules"]), "position": "top",
                             "color": "#b91c1c", "fontWeight": "bold"}
        elif p["decision"] == "warning":
            item["itemStyle"] = {"color": "#b45309"}
        values.append(item)
    mark = []
    styles = {"mean": ("#15803d", "solid"), "1sd": ("#94a3b8", "dotted"), "2sd": ("#b45309", "dashed"),
              "3sd": ("#b91c1c", "dashed")}
    for name, y in lines.items():
        key = "mean" if name == "mean" else name[1:]
        color, kind = styles[key]
        label = "x̄" if name == "mean" else f"{name[0]}{name[1]}SD"
        mark.append({"yAxis": y, "name": label, "lineStyle": {"color": color, "type": kind},
                     "label": {"formatter": label, "position": "end", "color": color}})
    y_axis: dict[str, Any] = {"type": "value", "scale": True}
    if lines:
        sd = (lines["+1sd"] - lines["mean"]) or 1
        y_axis.update(min=round(lines["mean"] - 4 * sd, 6), max=round(lines["mean"] + 4 * sd, 6))
    return {
        "animation": False,
        "grid": {"left": 60, "right": 50, "top": 25, "bottom": 40},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "category", "axisLabel": {"fontSize": 10}},
        "yAxis": y_axis,
        "series": [{"type": "line", "data": values, "symbol": "circle", "symbolSize": 7,
                    "lineStyle": {"color": "#2f5d8a"}, "itemStyle": {"color": "#2f5d8a"},
                    "markLine": {"symbol": "none", "silent": True, "data": mark}}],
    }


class QcView:
    def __init__(self, ctx: LisContext, page: Page) -> None:
        self.ctx = ctx
        self.page = page

    def build(self) -> None:
        p = self.page
        title(p.t("qc_dashboard"))
        with ui.row().classes("w-full gap-3 items-start no-wrap"):
            with ui.card().classes("lis-card q-pa-sm").style("width: 520px; min-width: 520px"):
                self.status_table = ui.table(columns=[
                    {"name": "instrument", "label": p.t("instrument"), "field": "instrument", "align": "left"},
                    {"name": "test", "label": p.t("analyte"), "field": "test", "align": "left"},
                    {"name": "status", "label": p.t("status"), "field": "status", "align": "left"},
                    {"name": "last", "label": p.t("qc_last_run"), "field": "last", "align": "left"}],
                    rows=[], row_key="key").props(f'dense flat no-data-label="{p.t("no_data")}"').classes(
                    "w-full").mark("qc-status")
                self.status_table.add_slot("body-cell-status", '''<q-td :props="props">
                    <q-badge :color="props.row.color" :data-qc-status="props.row.raw">{{ props.value }}</q-badge>
                    <span v-if="props.row.hold" class="text-caption q-ml-xs">{{ props.row.hold }}</span></q-td>''')
                self.status_table.on("rowClick", lambda e: self.show_chart(e.args[1]["instrument"],
                                                                           e.args[1]["test"]))
            with ui.column().classes("col gap-3"):
                self.chart_box = ui.column().classes("w-full gap-2")
                with self.chart_box:
                    ui.label(p.t("choose_pair")).classes("muted")
        with ui.card().classes("lis-card w-full q-pa-sm"):
            ui.label(p.t("qc_holds")).classes("text-subtitle2")
            self.holds_table = ui.table(columns=[
                {"name": k, "label": p.t(lbl), "field": k, "align": "left"} for k, lbl in (
                    ("instrument", "instrument"), ("test", "analyte"), ("reason", "hold_reason"),
                    ("since", "hold_since"), ("state", "hold_state"), ("action", "corrective_action"))],
                rows=[], row_key="id").props(f'dense flat no-data-label="{p.t("none")}"').classes("w-full").mark(
                "qc-holds")
            self.holds_table.add_slot("body-cell-action", '''<q-td :props="props">
                <span v-if="props.row.action_text" class="text-caption">{{ props.row.action_text }}</span>
                <q-btn v-if="props.row.can" dense unelevated no-caps size="sm" color="primary" icon="build"
                  :label="props.row.label" data-action="corrective"
                  @click="$parent.$emit('corrective', props.row.id)" /></q-td>''')
            self.holds_table.on("corrective", lambda e: self.corrective_dialog(int(e.args)))
        with ui.expansion(p.t("manual_qc"), icon="edit_note").classes("w-full lis-card"):
            self.manual_form()
        with ui.expansion(p.t("lot_setup"), icon="inventory_2").classes("w-full lis-card"):
            self.lot_setup()
        with ui.expansion(p.t("rule_sets"), icon="rule").classes("w-full lis-card"):
            self.rule_editor()
        self.load()
        ui.timer(10.0, self.load)

    # -- status and holds -------------------------------------------------------------------------------------
    def load(self) -> None:
        p = self.page
        with self.ctx.db.read() as session:
            rows = qc_status(session, utcnow())
            holds = qc_view.open_holds(session)
        self.status_table.rows = [{
            "key": f"{r['instrument']}/{r['test_code']}", "instrument": r["instrument"], "test": r["test_code"],
            "raw": r["status"], "status": p.t("qc_" + str(r["status"])), "color": STATUS_COLOR.get(str(r["status"])),
            "hold": tr("hold", str(r["hold_reason"]), p.lang) if r["hold_reason"] else "",
            "last": p.dt(r["last_run"]["run_at"]) if r["last_run"] else ""}  # type: ignore[index]
            for r in rows]
        self.status_table.update()
        can = self.page.user.can("qc:corrective")
        self.holds_table.rows = [{
            "id": h.id, "instrument": h.instrument, "test": h.test_code, "reason": tr("hold", h.reason, p.lang),
            "since": p.dt(h.since) if h.since else "—", "state": tr("hold", h.state, p.lang),
            "raw_state": h.state, "action_text": h.corrective_action,
            "can": can and h.state == "open", "label": p.t("record_action")} for h in holds]
        self.holds_table.update()

    def corrective_dialog(self, hold_id: int) -> None:
        p = self.page
        with ui.dialog() as dialog, ui.card().classes("q-pa-md").style("width: 480px"):
            ui.label(p.t("record_action")).classes("text-subtitle1")
            text = ui.textarea(p.t("corrective_action")).props("outlined autofocus data-testid=corrective-text") \
                .classes("w-full")

            def save() -> None:
                text.error = None
                if len((text.value or "").strip()) < 3:
                    text.error = p.t("required")
                    return
                user = p.act("qc:corrective")
                if user is None:
                    return
                try:
                    qc_service(self.ctx).record_corrective_action(hold_id, text.value.strip(), user.username)
                except QC_ERRORS as exc:
                    text.error = str(exc)
                    return
                ui.notify(p.t("action_recorded"), type="positive")
                dialog.close()
                self.load()

            with ui.row().classes("justify-end w-full"):
                ui.button(p.t("cancel"), on_click=dialog.close).props("flat")
                ui.button(p.t("save"), on_click=save).props("unelevated data-testid=corrective-save")
        dialog.open()

    # -- Levey-Jennings ---------------------------------------------------------------------------------------
    def show_chart(self, instrument: str, test_code: str) -> None:
        p = self.page
        with self.ctx.db.read() as session:
            targets = qc_view.lot_targets(session, instrument, test_code)
            charts = [(lt, levey_jennings(session, instrument=instrument, test_code=test_code,
                                          lot_id=lt.lot.id or 0, limit=200).as_dict()) for lt in targets]
        self.chart_box.clear()
        with self.chart_box:
            ui.label(f"{p.t('levey_jennings')}: {test_code} · {instrument}").classes("text-subtitle1")
            if not charts:
                ui.label(p.t("no_data")).classes("muted")
            for lt, data in charts:
                with ui.card().classes("lis-card w-full q-pa-sm"):
                    stats = data["statistics"]
                    mean = lt.target.mean or "—"
                    ui.label(f"{lt.label} · {p.t('mean')} {mean} · {p.t('sd')} {lt.target.sd or '—'} · "
                             f"n={stats['n']}" + (f" · CV {stats['cv_pct']:.2f}%" if stats.get("cv_pct") else "")
                             ).classes("text-caption text-weight-medium")
                    ui.echart(lj_options(data, p)).classes("w-full h-64").props("data-testid=lj-chart")

    # -- manual entry -----------------------------------------------------------------------------------------
    def manual_form(self) -> None:
        p = self.page
        with self.ctx.db.read() as session:
            mats = {m.id: f"{m.code} — {m.name} {m.level}".strip() for m in qc_view.materials(session)}
        with ui.row().classes("items-start gap-2"):
            instrument = ui.select({i.name: i.name for i in self.ctx.config.instruments}, label=p.t("instrument")
                                   ).props("outlined dense").classes("w-40")
            test = ui.select(sorted(self.ctx.catalog.get().by_code), label=p.t("analyte"), with_input=True).props(
                "outlined dense").classes("w-40")
            material = ui.select(mats, label=p.t("material")).props("outlined dense").classes("w-64")
            value = ui.input(p.t("value")).props("outlined dense").classes("w-32")
            lot = ui.input(p.t("lot")).props("outlined dense").classes("w-32")

            async def save() -> None:
                for f in (instrument, test, material, value):
                    f.error = None
                missing = [f for f in (instrument, test, material) if not f.value]
                if not (value.value or "").strip():
                    missing.append(value)
                for f in missing:
                    f.error = p.t("required")
                if missing:
                    return
                user = p.act("qc:write")
                if user is None:
                    return
                try:
                    _, qc_run = await run.io_bound(
                        qc_service(self.ctx).enter_manual, actor=user.username, instrument=instrument.value,
                        test_code=test.value, material_id=int(material.value), value=value.value,
                        lot_number=(lot.value or "").strip() or None)
                except QC_ERRORS as exc:
                    value.error = str(exc)
                    return
                ui.notify(f"{p.t('run')} {qc_run.run_key}: {qc_run.decision or qc_run.status}", type="positive")
                value.value = ""
                self.load()

            ui.button(p.t("save"), on_click=save).props("unelevated").set_enabled(p.user.can("qc:write"))

    # -- lots, targets, rule sets -----------------------------------------------------------------------------
    def lot_setup(self) -> None:
        p = self.page
        can = p.user.can("qc:config")
        with self.ctx.db.read() as session:
            targets = qc_view.lot_targets(session)
            lots = qc_view.lots(session)
        ui.table(columns=[{"name": k, "label": p.t(lbl), "field": k, "align": "left"} for k, lbl in (
            ("pair", "analyte"), ("lot", "lot"), ("mean", "mean"), ("sd", "sd"), ("source", "source"),
            ("state", "state"))], rows=[{
                "id": lt.target.id, "pair": f"{lt.target.test_code} · {lt.target.instrument}", "lot": lt.label,
                "mean": lt.target.mean or "", "sd": lt.target.sd or "", "source": lt.target.source,
                "state": lt.target.state} for lt in targets], row_key="id").props(
            f'dense flat no-data-label="{p.t("no_data")}"').classes("w-full")
        if not can:
            return
        with ui.row().classes("items-start gap-2 q-mt-sm"):
            lot = ui.select({lt.id: f"{m.code} {m.level} — {lt.lot_number}" for lt, m in lots}, label=p.t("lot")
                            ).props("outlined dense").classes("w-56")
            instrument = ui.select({i.name: i.name for i in self.ctx.config.instruments}, label=p.t("instrument")
                                   ).props("outlined dense").classes("w-36")
            test = ui.select(sorted(self.ctx.catalog.get().by_code), label=p.t("analyte"), with_input=True).props(
                "outlined dense").classes("w-32")
            mean = ui.input(p.t("mean")).props("outlined dense").classes("w-28")
            sd = ui.input(p.t("sd")).props("outlined dense").classes("w-28")
            tea = ui.number(p.t("tea")).props("outlined dense").classes("w-24")

            def save() -> None:
                mean.error = None
                user = p.act("qc:config")
                if user is None:
                    return
                try:
                    with self.ctx.db.write() as session:
                        qc_setup.create_target(session, user.username, lot_id=int(lot.value or 0),
                                               instrument=instrument.value or "", test_code=test.value or "",
                                               mean=(mean.value or None), sd=(sd.value or None),
                                               tea_pct=tea.value)
                except QC_ERRORS as exc:
                    mean.error = str(exc)
                    return
                ui.notify(p.t("saved"), type="positive")

            ui.button(p.t("new_target"), on_click=save).props("unelevated")

    def rule_editor(self) -> None:
        p = self.page
        can = p.user.can("qc:config")
        with ui.row().classes("items-start gap-2"):
            instrument = ui.select({i.name: i.name for i in self.ctx.config.instruments}, label=p.t("instrument")
                                   ).props("outlined dense").classes("w-36")
            test = ui.select(sorted(self.ctx.catalog.get().by_code), label=p.t("analyte"), with_input=True).props(
                "outlined dense").classes("w-32")
            reject = ui.input(p.t("rejection_rules"), value="1_3s,2_2s,R_4s,4_1s,10_x").props(
                "outlined dense").classes("w-64")
            warn = ui.input(p.t("warning_rules"), value="1_2s").props("outlined dense").classes("w-32")
            interval = ui.number(p.t("max_interval"), value=24).props("outlined dense").classes("w-40")
        proposal = ui.label("").classes("text-caption")

        def load_current() -> None:
            if not instrument.value or not test.value:
                return
            with self.ctx.db.read() as session:
                rules = qc_setup.effective_rules(session, instrument.value, test.value)
            reject.value = ",".join(sorted(rules.rules.reject))
            warn.value = ",".join(sorted(rules.rules.warn))
            interval.value = rules.max_interval_hours

        instrument.on_value_change(load_current)
        test.on_value_change(load_current)

        def propose() -> None:
            proposal.set_text("")
            reject.error = None
            if not instrument.value or not test.value:
                reject.error = p.t("choose_pair")
                return
            try:
                with self.ctx.db.read() as session:
                    found = qc_setup.propose_rule_set(session, instrument.value, test.value).as_dict()
            except QC_ERRORS as exc:
                reject.error = str(exc)
                return
            reject.value = ",".join(found["rejection_rules"])  # type: ignore[arg-type]
            warn.value = ",".join(found["warning_rules"])  # type: ignore[arg-type]
            proposal.set_text(f"σ = {found['sigma']} ({found['band']}) — {found['note']}")

        def save() -> None:
            reject.error = None
            user = p.act("qc:config")
            if user is None:
                return
            try:
                with self.ctx.db.write() as session:
                    qc_setup.set_rule_set(session, user.username, instrument=instrument.value or "",
                                          test_code=test.value or "",
                                          rejection_rules=[r.strip() for r in (reject.value or "").split(",") if r],
                                          warning_rules=[r.strip() for r in (warn.value or "").split(",") if r],
                                          max_interval_hours=float(interval.value or 24),
                                          source="sigma proposal" if proposal.text else "manual")
            except QC_ERRORS as exc:
                reject.error = str(exc)
                return
            ui.notify(p.t("saved"), type="positive")

        with ui.row().classes("gap-2"):
            ui.button(p.t("sigma_proposal"), icon="functions", on_click=propose).props("outline")
            ui.button(p.t("save"), on_click=save).props("unelevated").set_enabled(can)


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/qc")
    def qc_page(page: Page) -> None:
        QcView(ctx, page).build()
