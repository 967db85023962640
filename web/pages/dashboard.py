"""``/dashboard``: today's workload, open results by section and status, instruments, QC, TAT."""

from __future__ import annotations

from nicegui import ui

from lis.context import LisContext
from lis.services.dashboard import workload
from web import extras
from web.i18n import tr
from web.layout import Page, lis_page, title
from web.worklist_rows import STATUS_COLOR


def _tile(label: str, value: object, icon: str, color: str, testid: str) -> None:
    with ui.card().classes("lis-card q-pa-md").style("min-width: 170px"), ui.row().classes(
            "items-center gap-3 no-wrap"):
        ui.icon(icon).classes(f"text-3xl text-{color}")
        with ui.column().classes("gap-0"):
            ui.label(str(value)).classes("text-h5 text-weight-bold").props(f"data-testid={testid}")
            ui.label(label).classes("muted text-caption")


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/dashboard")
    def dashboard(page: Page) -> None:
        title(page.t("nav_dashboard"))
        container = ui.column().classes("w-full gap-3")

        def render() -> None:
            with ctx.db.read() as session:
                load = workload(session, page.tz)
            container.clear()
            with container:
                with ui.row().classes("gap-3"):
                    _tile(page.t("orders_today"), load.orders_today, "assignment", "primary", "orders-today")
                    _tile(page.t("results_today"), load.results_today, "science", "accent", "results-today")
                    _tile(page.t("pending"), sum(load.open_by_status.values()), "pending_actions", "warning",
                          "pending-count")
                    _tile(page.t("released_today"), load.released_today, "task_alt", "positive", "released-today")
                    _tile(page.t("unmatched"), load.unmatched, "link_off", "negative", "unmatched-count")
                    _tile(page.t("quarantined"), load.quarantined, "report", "negative", "quarantined-count")
                with ui.row().classes("w-full gap-3 items-stretch"):
                    with ui.card().classes("lis-card col q-pa-sm"):
                        ui.label(page.t("by_section")).classes("text-subtitle2")
                        rows = [{"section": tr("sec", s, page.lang), "n": n}
                                for s, n in sorted(load.open_by_section.items())]
                        ui.table(columns=[{"name": "section", "label": page.t("section"), "field": "section",
                                           "align": "left"},
                                          {"name": "n", "label": page.t("pending"), "field": "n"}],
                                 rows=rows, row_key="section").props(
                            f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full")
                        ui.label(page.t("by_status")).classes("text-caption muted q-mt-sm")
                        with ui.row().classes("gap-2"):
                            for status, n in sorted(load.open_by_status.items()):
                                ui.badge(f"{page.t('st_' + status)}: {n}", color=STATUS_COLOR.get(status, "grey"))
                    with ui.card().classes("lis-card col q-pa-sm"):
                        ui.label(page.t("results_today")).classes("text-subtitle2")
                        ui.echart({
                            "grid": {"left": 40, "right": 10, "top": 10, "bottom": 25},
                            "tooltip": {"trigger": "axis"},
                            "xAxis": {"type": "category", "data": [f"{h:02d}h" for h in range(24)]},
                            "yAxis": {"type": "value", "minInterval": 1},
                            "series": [{"type": "bar",
                                        "data": [dict(load.results_by_hour).get(h, 0) for h in range(24)],
                                        "barMaxWidth": 18, "itemStyle": {"color": "#2f5d8a"}}],
                        }).classes("w-full h-48")
                with ui.row().classes("w-full gap-3 items-stretch"):
                    with ui.card().classes("lis-card col q-pa-sm"):
                        ui.label(page.t("instrument_state")).classes("text-subtitle2")
                        extras.instrument_badges(ctx, page)
                    with ui.card().classes("lis-card col q-pa-sm"):
                        ui.label(page.t("tat")).classes("text-subtitle2")
                        extras.tat_table(ctx, page)
                    with ui.card().classes("lis-card col q-pa-sm"):
                        ui.label(page.t("qc_state")).classes("text-subtitle2")
                        extras.qc_summary(ctx, page)

        render()
        ui.timer(15.0, render)
