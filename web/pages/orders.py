"""``/orders``: order entry with a test/panel picker, specimen reception by barcode scan, labels."""

from __future__ import annotations

from nicegui import ui

from lis.context import LisContext
from lis.services.orders import OrderConflict, OrderError, OrderRequest, create_order
from lis.services.patients import PatientData, PatientError, validate
from lis.services.reception import ReceptionError, receive_specimen, recent_orders
from web.i18n import parse_date
from web.layout import Page, lis_page, title


def _picker_options(ctx: LisContext, lang: str) -> dict[str, str]:
    catalog = ctx.catalog.get()
    options = {code: f"{code} — {code} ({', '.join(members)})" for code, members in sorted(catalog.panels.items())}
    for code, test in sorted(catalog.by_code.items()):
        options[code] = f"{code} — {test.name_vi if lang == 'vi' else test.name_en}"
    return options


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/orders")
    def orders(page: Page) -> None:
        title(page.t("nav_orders"))
        can_write = page.user.can("orders:write")
        with ui.row().classes("w-full gap-3 items-start no-wrap"):
            with ui.card().classes("lis-card q-pa-md").style("width: 460px"):
                ui.label(page.t("new_order")).classes("text-subtitle1 text-primary")
                name = ui.input(page.t("name")).props("outlined dense data-testid=order-name").classes("w-full")
                with ui.row().classes("w-full no-wrap gap-2"):
                    national_id = ui.input(page.t("national_id")).props("outlined dense").classes("col")
                    mrn = ui.input(page.t("mrn")).props("outlined dense").classes("col")
                with ui.row().classes("w-full no-wrap gap-2"):
                    sex = ui.select({s: page.t("sex_" + s) for s in "MFU"}, value="U", label=page.t("sex")).props(
                        "outlined dense").classes("col")
                    birth = ui.input(page.t("birth_date"),
                                     placeholder="DD/MM/YYYY" if page.lang == "vi" else "YYYY-MM-DD").props(
                        "outlined dense").classes("col")
                barcode = ui.input(page.t("specimen")).props("outlined dense data-testid=order-barcode").classes(
                    "w-full")
                tests = ui.select(_picker_options(ctx, page.lang), multiple=True, with_input=True,
                                  label=page.t("tests_panels")).props(
                    "outlined dense use-chips data-testid=order-tests").classes("w-full")
                with ui.row().classes("w-full no-wrap gap-2"):
                    priority = ui.select({"routine": page.t("routine"), "stat": page.t("stat")}, value="routine",
                                         label=page.t("priority")).props("outlined dense").classes("col")
                    department = ui.input(page.t("department")).props("outlined dense").classes("col")
                clinician = ui.input(page.t("clinician")).props("outlined dense").classes("w-full")
                info = ui.input(page.t("clinical_info")).props("outlined dense").classes("w-full")
                message = ui.label("").classes("text-negative")

                def submit() -> None:
                    for field in (name, national_id, birth, barcode, tests):
                        field.error = None
                    message.set_text("")
                    user = page.act("orders:write")
                    if user is None:
                        return
                    try:
                        birth_date = parse_date(birth.value or "", page.lang)
                    except ValueError:
                        birth.error = "DD/MM/YYYY" if page.lang == "vi" else "YYYY-MM-DD"
                        return
                    data = PatientData(name=(name.value or "").strip(), national_id=(national_id.value or "").strip()
                                       or None, sex=sex.value, birth_date=birth_date, mrn=(mrn.value or "").strip()
                                       or None)
                    try:
                        validate(data)
                    except PatientError as exc:
                        text = str(exc)
                        target = national_id if "national_id" in text else birth if "birth" in text else name
                        target.error = text
                        return
                    if not (barcode.value or "").strip():
                        barcode.error = page.t("required")
                        return
                    if not tests.value:
                        tests.error = page.t("required")
                        return
                    request = OrderRequest(patient=data, specimen_id=barcode.value, tests=list(tests.value),
                                           priority=priority.value, department=department.value or "",
                                           ordering_clinician=clinician.value or "", clinical_info=info.value or "",
                                           source="manual")
                    try:
                        with ctx.db.write() as session:
                            order = create_order(session, ctx.catalog.get(), request, user.username)
                            number = order.filler_number
                    except OrderConflict as exc:
                        barcode.error = str(exc)
                        return
                    except OrderError as exc:
                        tests.error = str(exc)
                        return
                    ui.notify(page.t("order_created", n=number), type="positive")
                    barcode.value, tests.value = "", []
                    refresh()

                ui.button(page.t("create_order"), icon="add", on_click=submit).props(
                    "unelevated data-testid=create-order").set_enabled(can_write)
            with ui.column().classes("col gap-3"):
                with ui.card().classes("lis-card w-full q-pa-md"):
                    ui.label(page.t("reception")).classes("text-subtitle1 text-primary")
                    with ui.row().classes("items-center gap-2"):
                        scan = ui.input(page.t("scan_barcode")).props(
                            "outlined dense autofocus data-testid=scan").classes("w-72")

                        def receive() -> None:
                            scan.error = None
                            user = page.act("orders:write")
                            if user is None:
                                return
                            try:
                                with ctx.db.write() as session:
                                    receive_specimen(session, scan.value or "", user.username)
                            except ReceptionError as exc:
                                scan.error = str(exc)
                                return
                            ui.notify(page.t("specimen_received", n=scan.value), type="positive")
                            scan.value = ""
                            refresh()

                        scan.on("keydown.enter", receive)
                        ui.button(page.t("receive"), icon="qr_code_scanner", on_click=receive).props(
                            "unelevated").set_enabled(can_write)
                with ui.card().classes("lis-card w-full q-pa-sm"):
                    ui.label(page.t("recent_orders")).classes("text-subtitle2")
                    columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
                        ("number", "order_no"), ("patient", "patient"), ("specimen", "specimen"),
                        ("tests", "test"), ("priority", "priority"), ("status", "status"), ("created", "time"))]
                    table = ui.table(columns=columns, rows=[], row_key="number", pagination=15).props(
                        "dense flat").classes("w-full")
                    table.add_slot("body-cell-priority", '''<q-td :props="props">
                        <q-badge v-if="props.row.stat" color="negative" :label="props.value" />
                        <span v-else>{{ props.value }}</span></q-td>''')
                    table.on("rowClick", lambda e: label_dialog(e.args[1]))

        def refresh() -> None:
            with ctx.db.read() as session:
                items = recent_orders(session)
            table.rows = [{"number": o.order.filler_number, "patient": o.patient.name,
                           "specimen": " ".join(o.barcodes), "tests": " ".join(o.tests),
                           "priority": page.t(o.order.priority), "stat": o.order.priority == "stat",
                           "status": " ".join(o.specimen_status), "created": page.dt(o.order.created_at)}
                          for o in items]
            table.update()

        def label_dialog(row: dict[str, object]) -> None:
            with ui.dialog() as dialog, ui.card().classes("q-pa-md"):
                ui.label(page.t("label")).classes("text-subtitle2")
                with ui.column().classes("q-pa-sm gap-0").style("border: 1px dashed #999; width: 300px"):
                    ui.label(str(row["patient"])).classes("text-weight-bold")
                    ui.label(str(row["specimen"])).classes("text-h5").style("font-family: monospace")
                    ui.label(f"{row['number']} · {row['tests']}").classes("text-caption")
                with ui.row():
                    ui.button(icon="print", on_click=lambda: ui.run_javascript("window.print()")).props("flat")
                    ui.button(page.t("close"), on_click=dialog.close).props("flat")
            dialog.open()

        refresh()
