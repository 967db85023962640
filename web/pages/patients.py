"""``/patients``: search (accent-insensitive name, CCCD, hospital id, barcode), record, cumulative results,
trend chart per test, and the reports delivered to the EMR (when the interfaces package provides them)."""

from __future__ import annotations

from nicegui import ui

from lis.context import LisContext
from lis.models import Patient
from lis.services.patient_record import cumulative, find_patients, patient_orders
from web import extras
from web.layout import Page, lis_page, title


def _patient_rows(page: Page, patients: list[Patient]) -> list[dict[str, object]]:
    return [{"id": p.id, "name": p.name, "national_id": p.national_id or "", "mrn": p.mrn or "",
             "sex": page.t("sex_" + p.sex), "birth_date": page.d(p.birth_date)} for p in patients]


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/patients")
    def patients(page: Page) -> None:
        title(page.t("nav_patients"))
        with ui.row().classes("w-full items-center gap-2"):
            query = ui.input(page.t("search"), placeholder=page.t("patient_search_hint")).props(
                "outlined dense clearable data-testid=patient-search").classes("w-96")
            ui.button(page.t("search"), icon="search", on_click=lambda: search()).props("unelevated")
        columns = [{"name": k, "label": page.t(k), "field": k, "align": "left"}
                   for k in ("name", "national_id", "mrn", "sex", "birth_date")]
        found = ui.table(columns=columns, rows=[], row_key="id", pagination=10).props(
            f'dense flat no-data-label="{page.t("no_patient")}"').classes("w-full lis-card")
        record = ui.column().classes("w-full gap-3")

        def search() -> None:
            with ctx.db.read() as session:
                rows = _patient_rows(page, find_patients(session, query.value or ""))
            found.rows = rows
            found.update()
            if len(rows) == 1:
                show(int(rows[0]["id"]))  # type: ignore[arg-type]

        def show(patient_id: int) -> None:
            with ctx.db.read() as session:
                patient = session.get(Patient, patient_id)
                if patient is None:
                    return
                table = cumulative(session, patient_id)
                orders = patient_orders(session, patient_id)
            record.clear()
            with record:
                with ui.card().classes("lis-card w-full q-pa-md"):
                    ui.label(patient.name).classes("text-h6").props("data-testid=patient-name")
                    ui.label(f"{page.t('national_id')}: {patient.national_id or '—'} · {page.t('mrn')}: "
                             f"{patient.mrn or '—'} · {page.t('sex')}: {page.t('sex_' + patient.sex)} · "
                             f"{page.t('birth_date')}: {page.d(patient.birth_date)}").classes("muted")
                    ui.label(", ".join(f"{o.order.filler_number} ({page.d(o.order.created_at.date())}): "
                                       f"{' '.join(o.tests)}" for o in orders[:5])).classes("text-caption")
                with ui.card().classes("lis-card w-full q-pa-sm"):
                    ui.label(page.t("cumulative")).classes("text-subtitle2")
                    cols = [{"name": "test", "label": page.t("test"), "field": "test", "align": "left"},
                            {"name": "unit", "label": page.t("unit"), "field": "unit", "align": "left"}]
                    cols += [{"name": b, "label": page.dt(at), "field": b, "align": "right",
                              "classes": "", "headerClasses": ""} for b, at in table.columns]
                    rows = []
                    for code, by_specimen in sorted(table.rows.items()):
                        row: dict[str, object] = {"test": code, "unit": table.units.get(code, "")}
                        for barcode, result in by_specimen.items():
                            row[barcode] = f"{result.value} {result.lis_flags}".strip()
                        rows.append(row)
                    cum = ui.table(columns=cols, rows=rows, row_key="test").props(
                        f'dense flat no-data-label="{page.t("no_results")}"').classes("w-full")
                    cum.add_slot("body-cell", r'''
                        <q-td :props="props" :class="props.col.name.length > 4 && /\s(HH|LL)$/.test(props.value)
                            ? 'text-negative text-weight-bold'
                            : (/\s(H|L)$/.test(props.value) ? 'text-warning text-weight-bold' : '')">
                          {{ props.value }}</q-td>''')
                with ui.card().classes("lis-card w-full q-pa-sm"):
                    ui.label(page.t("trend")).classes("text-subtitle2")
                    if table.series:
                        chart_test = ui.select(sorted(table.series), value=sorted(table.series)[0]).props(
                            "dense outlined").classes("w-48")
                        chart = ui.echart(_trend(table.series, chart_test.value, page)).classes("w-full h-64")

                        def change_test() -> None:
                            chart.options.clear()
                            chart.options.update(_trend(table.series, chart_test.value, page))
                            chart.update()

                        chart_test.on_value_change(change_test)
                    else:
                        ui.label(page.t("no_data")).classes("muted")
                with ui.card().classes("lis-card w-full q-pa-sm"):
                    ui.label(page.t("reports")).classes("text-subtitle2")
                    extras.patient_reports(ctx, page, patient_id)

        found.on("rowClick", lambda e: show(int(e.args[1]["id"])))
        query.on("keydown.enter", search)
        preset = page.query("id")
        if preset.isdigit():
            show(int(preset))
        elif page.query("q"):
            query.value = page.query("q")
            search()


def _trend(series: dict[str, list[tuple[object, float]]], test: str, page: Page) -> dict[str, object]:
    points = series.get(test, [])
    return {
        "grid": {"left": 50, "right": 20, "top": 20, "bottom": 30},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [page.dt(at) for at, _ in points]},
        "yAxis": {"type": "value", "scale": True},
        "series": [{"type": "line", "name": test, "data": [v for _, v in points], "symbolSize": 8,
                    "itemStyle": {"color": "#2f5d8a"}}],
    }
