"""``/critical``: open critical values and "record notification" (who was told, how, read-back)."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from lis.context import LisContext
from lis.events import ResultReleased, ResultsIngested
from lis.services.workflow import WorkflowError
from lis.services.workflow.critical import METHODS
from web import live
from web.layout import Page, lis_page, title


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/critical")
    def critical(page: Page) -> None:
        title(page.t("critical_open"))
        can_record = page.user.can("results:critical")
        columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
            ("specimen", "specimen"), ("patient", "patient"), ("test", "test"), ("value", "value"),
            ("status", "status"), ("received", "received"), ("attempts", "attempts_no_readback"),
            ("action", "action"))]
        table = ui.table(columns=columns, rows=[], row_key="id").props(
            f'dense flat no-data-label="{page.t("no_critical")}" data-testid=critical-table').classes(
            "w-full lis-card").mark("critical")
        table.add_slot("body-cell-value", '''<q-td :props="props">
            <span class="flag-crit">{{ props.value }}</span> <span class="text-caption">{{ props.row.flag }}</span>
            </q-td>''')
        table.add_slot("body-cell-action", '''<q-td :props="props">
            <q-btn v-if="props.row.can" dense unelevated no-caps size="sm" color="negative" icon="phone_in_talk"
              :label="props.row.label" data-action="notify" :data-specimen="props.row.specimen"
              @click="$parent.$emit('notify', props.row.id)" />
            </q-td>''')

        def load() -> None:
            rows = ctx.workflow.pending_criticals()
            table.rows = [{"id": c.result_id, "specimen": c.specimen_id, "patient": c.patient_name or "",
                           "test": c.test_code or "", "value": c.value, "flag": c.flag,
                           "status": page.t("st_" + c.status), "received": page.dt(c.received_at),
                           "attempts": c.attempts, "can": can_record, "label": page.t("record_notification")}
                          for c in rows]
            table.update()

        def dialog_for(result_id: int) -> None:
            row: dict[str, Any] | None = next((r for r in table.rows if r["id"] == result_id), None)
            if row is None:
                return
            with ui.dialog() as dialog, ui.card().classes("q-pa-md").style("width: 440px"):
                ui.label(f"{page.t('record_notification')}: {row['test']} = {row['value']} {row['flag']}").classes(
                    "text-subtitle1")
                ui.label(f"{row['specimen']} · {row['patient']}").classes("muted")
                who = ui.input(page.t("notified_person")).props("outlined dense autofocus data-testid=notified") \
                    .classes("w-full")
                how = ui.select({m: page.t("how_" + m) for m in METHODS}, value="phone",
                                label=page.t("notified_how")).props("outlined dense").classes("w-full")
                read_back = ui.checkbox(page.t("read_back"), value=True).props("data-testid=read-back")
                note = ui.input(page.t("comment")).props("outlined dense").classes("w-full")

                def save() -> None:
                    who.error = None
                    if not (who.value or "").strip():
                        who.error = page.t("required")
                        return
                    user = page.act("results:critical")
                    if user is None:
                        return
                    try:
                        ctx.workflow.notify_critical(result_id, actor=user.username, notified=who.value,
                                                     method=how.value, read_back=bool(read_back.value),
                                                     comment=note.value or "")
                    except WorkflowError as exc:
                        who.error = str(exc)
                        return
                    ui.notify(page.t("notification_saved"), type="positive")
                    dialog.close()
                    load()

                with ui.row().classes("justify-end w-full"):
                    ui.button(page.t("cancel"), on_click=dialog.close).props("flat")
                    ui.button(page.t("save"), on_click=save).props("unelevated color=negative "
                                                                    "data-testid=notify-save")
            dialog.open()

        table.on("notify", lambda e: dialog_for(int(e.args)))
        load()
        live.subscribe(ctx.bus, (ResultsIngested, ResultReleased), lambda _events: load())
