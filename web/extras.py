"""Panels that show what other packages produce (instrument links, TAT, QC state, EMR delivery and signed
reports); each calls that package's service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import ui

from lis.context import LisContext
from lis.models import utcnow
from lis.services.dashboard import local_day_start
from lis.services.patient_record import patient_orders
from lis.services.workflow import tat
from web.i18n import tr

if TYPE_CHECKING:
    from web.layout import Page

STATE_COLOR = {"connected": "positive", "listening": "primary", "connecting": "warning", "disconnected": "grey",
               "error": "negative", "stopped": "grey"}
QC_COLOR = {"accepted": "positive", "warning": "warning", "rejected": "negative", "held": "brown-6", "no_qc": "grey"}
DELIVERY_COLOR = {"pending": "warning", "delivered": "positive", "dead": "negative"}


def instrument_badges(ctx: LisContext, page: Page) -> None:
    live = ctx.status.snapshot()
    if not ctx.config.instruments:
        ui.label(page.t("no_data")).classes("muted")
    for inst in ctx.config.instruments:
        state = live.get(inst.name, {}).get("state", "stopped")
        with ui.row().classes("items-center gap-2"):
            ui.badge(tr("link", state, page.lang), color=STATE_COLOR.get(state, "grey"))
            ui.label(inst.name).classes("text-weight-medium")
            last = live.get(inst.name, {}).get("last_message_at")
            ui.label(page.dt(last) if last else "").classes("muted text-caption")


def tat_table(ctx: LisContext, page: Page) -> None:
    """Median and P90 specimen-received → released, by section, today (workflow's pandas report)."""
    with ctx.db.read() as session:
        report = tat.tat_report(session, since=local_day_start(page.tz), timezone=page.tz)
    rows = [{**r, "section": tr("sec", str(r["section"]), page.lang)} for r in report.get("by_section", [])]
    if not rows:
        ui.label(page.t("tat_missing")).classes("muted")
        return
    ui.table(columns=[
        {"name": "section", "label": page.t("section"), "field": "section", "align": "left"},
        {"name": "count", "label": "n", "field": "count"},
        {"name": "median", "label": page.t("median"), "field": "median_minutes"},
        {"name": "p90", "label": page.t("p90"), "field": "p90_minutes"}], rows=rows, row_key="section").props(
        "dense flat").classes("w-full")


def qc_summary(ctx: LisContext, page: Page) -> None:
    from qc.status import qc_status

    with ctx.db.read() as session:
        rows = qc_status(session, utcnow())
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1
    if not counts:
        ui.label(page.t("no_data")).classes("muted")
        return
    with ui.row().classes("gap-2"):
        for status in ("rejected", "held", "warning", "accepted", "no_qc"):
            if counts.get(status):
                ui.badge(f"{page.t('qc_' + status)}: {counts[status]}", color=QC_COLOR[status])
    bad = [f"{r['test_code']} · {r['instrument']}" for r in rows if r["status"] in ("rejected", "held")]
    if bad:
        ui.label(", ".join(bad[:8])).classes("text-caption text-negative")


def patient_reports(ctx: LisContext, page: Page, patient_id: int) -> None:
    """Report versions per order, their signature and delivery status to each EMR destination."""
    from interfaces import outbox
    from interfaces.reports import find_signed_report

    rows = []
    with ctx.db.read() as session:
        for line in patient_orders(session, patient_id):
            order_id = line.order.id or 0
            for msg in outbox.list_outbox(session, order_id=order_id):
                signed = find_signed_report(session, order_id, msg.report_version)
                rows.append({
                    "id": msg.id, "order": line.order.filler_number,
                    "version": f"v{msg.report_version}{' (C)' if msg.correction else ''}",
                    "signed": f"{signed.signer} · {page.dt(signed.signed_at)}" if signed else "—",
                    "destination": msg.destination, "status": msg.status,
                    "color": DELIVERY_COLOR.get(msg.status, "grey"), "at": page.dt(msg.delivered_at)})
    if not rows:
        ui.label(page.t("no_data")).classes("muted")
        return
    table = ui.table(columns=[{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
        ("order", "order_no"), ("version", "reports"), ("signed", "details"), ("destination", "destination"),
        ("status", "status"), ("at", "delivered"))], rows=rows, row_key="id").props("dense flat").classes("w-full")
    table.add_slot("body-cell-status", '''<q-td :props="props">
        <q-badge :color="props.row.color">{{ props.value }}</q-badge></q-td>''')


def autoverification_rules(ctx: LisContext, page: Page) -> None:
    """Autoverification rule sets and section policies as the workflow stores them."""
    from lis.services.workflow.policies import list_section_policies, load_policies

    with ctx.db.read() as session:
        policies = load_policies(session)
        sections = list_section_policies(session)
    ui.table(columns=[{"name": k, "label": k, "field": k, "align": "left"} for k in (
        "section", "two_level", "self_validation", "auto_release")],
        rows=[{"section": s.section, "two_level": page.t("yes" if s.two_level else "no"),
               "self_validation": page.t("yes" if s.self_validation else "no"),
               "auto_release": page.t("yes" if s.auto_release else "no")} for s in sections],
        row_key="section").props(f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full")
    rule_rows = []
    for code, spec in sorted(policies.rule_sets.items()):
        rule_rows.append({"code": code, "enabled": page.t("yes" if spec.enabled else "no"),
                          "range": f"{'' if spec.av_low is None else spec.av_low}–"
                                   f"{'' if spec.av_high is None else spec.av_high}",
                          "rules": ", ".join(spec.rules)})
    ui.table(columns=[{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
        ("code", "test"), ("enabled", "active"), ("range", "range"), ("rules", "details"))], rows=rule_rows,
        row_key="code").props(f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full q-mt-sm")
    autoverification_simulator(ctx, page)


def autoverification_simulator(ctx: LisContext, page: Page) -> None:
    """Try a rule set on past results (CLSI AUTO15) before saving it (workflow:configure)."""
    from lis.services.workflow import WorkflowError
    from lis.services.workflow.policies import put_rule_set

    ui.label(page.t("av_simulator")).classes("text-subtitle2 q-mt-md")
    with ui.row().classes("items-start gap-2"):
        code = ui.select(sorted(ctx.catalog.get().by_code), label=page.t("test"), with_input=True).props(
            "outlined dense").classes("w-36")
        low = ui.number(page.t("av_low")).props("outlined dense").classes("w-32")
        high = ui.number(page.t("av_high")).props("outlined dense").classes("w-32")
        outcome = ui.label("").classes("text-body2")

        def definition() -> dict[str, object] | None:
            code.error = None
            if not code.value:
                code.error = page.t("required")
                return None
            return {"enabled": True, "av_low": low.value, "av_high": high.value}

        def simulate() -> None:
            wanted = definition()
            if wanted is None or page.act("workflow:read") is None:
                return
            try:
                report = ctx.workflow.simulate({code.value: wanted}).as_dict(sample=0)
            except WorkflowError as exc:
                code.error = str(exc)
                return
            rate = report["autoverification_rate"]
            outcome.set_text(page.t("av_simulated", n=report["total"], a=report["would_autoverify"],
                                    r="—" if rate is None else f"{float(rate) * 100:.1f}%",  # type: ignore[arg-type]
                                    d=report["would_release_human_did_not_count"]))

        def save() -> None:
            wanted = definition()
            user = page.act("workflow:configure") if wanted is not None else None
            if wanted is None or user is None:
                return
            try:
                with ctx.db.write() as session:
                    put_rule_set(session, code.value, user.username, enabled=True, av_low=low.value,
                                 av_high=high.value)
            except WorkflowError as exc:
                code.error = str(exc)
                return
            ui.notify(page.t("saved"), type="positive")

        ui.button(page.t("simulate"), icon="science", on_click=simulate).props("outline")
        ui.button(page.t("save"), on_click=save).props("unelevated").set_enabled(page.user.can("workflow:configure"))
