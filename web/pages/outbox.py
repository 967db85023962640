"""``/outbox``: EMR deliveries queued, delivered and dead-lettered per destination, with retry."""

from __future__ import annotations

from nicegui import ui

from lis.context import LisContext
from web.layout import Page, lis_page, title
from web.permissions import pick

try:  # the interfaces package (issue 7) provides the outbox
    from interfaces import outbox as emr_outbox
except ImportError:  # pragma: no cover - interfaces not installed
    emr_outbox = None  # type: ignore[assignment]

STATUS_COLOR = {"pending": "warning", "delivered": "positive", "dead": "negative"}


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/outbox")
    def outbox(page: Page) -> None:
        title(page.t("outbox"))
        if emr_outbox is None:
            ui.label(page.t("outbox_missing")).classes("muted")
            return
        retry_permission = pick("outbox:retry", "outbox:write", "catalog:write")
        counts_row = ui.row().classes("gap-3")
        with ui.row().classes("items-center gap-2"):
            status = ui.select({"": page.t("all"), "pending": page.t("queued"), "delivered": page.t("delivered"),
                                "dead": page.t("dead")}, value="", label=page.t("status")).props(
                "outlined dense").classes("w-44")
            destination = ui.select({"": page.t("all")} | {d.name: d.name for d in emr_outbox.destinations()},
                                    value="", label=page.t("destination")).props("outlined dense").classes("w-52")
            ui.button(page.t("refresh"), icon="refresh", on_click=lambda: load()).props("flat")
        columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
            ("id", "details"), ("destination", "destination"), ("kind", "protocol"), ("order", "order_no"),
            ("version", "reports"), ("status", "status"), ("attempts", "attempts"), ("error", "errors"),
            ("created", "time"), ("delivered", "delivered"))]
        table = ui.table(columns=columns, rows=[], row_key="id", pagination=25).props(
            f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full lis-card").mark("outbox")
        table.add_slot("body-cell-status", '''<q-td :props="props">
            <q-badge :color="props.row.color" :label="props.row.status_label" />
            <q-btn v-if="props.value === 'dead' && props.row.can_retry" dense flat size="sm" color="primary"
              icon="replay" :label="props.row.retry_label" @click="$parent.$emit('retry', props.row.id)" />
            </q-td>''')

        def load() -> None:
            with ctx.db.read() as session:
                counts = emr_outbox.status_counts(session)
                rows = emr_outbox.list_outbox(session, status=status.value or None,
                                              destination=destination.value or None)
            counts_row.clear()
            with counts_row:
                for dest, by_status in sorted(counts.items()):
                    with ui.card().classes("lis-card q-pa-sm"):
                        ui.label(dest).classes("text-weight-bold")
                        with ui.row().classes("gap-2"):
                            for key, label in (("pending", "queued"), ("delivered", "delivered"), ("dead", "dead")):
                                ui.badge(f"{page.t(label)}: {by_status.get(key, 0)}", color=STATUS_COLOR[key])
                if not counts:
                    ui.label(page.t("no_data")).classes("muted")
            can_retry = page.user.can(retry_permission)
            labels = {"pending": page.t("queued"), "delivered": page.t("delivered"), "dead": page.t("dead")}
            table.rows = [{"id": r.id, "destination": r.destination, "kind": r.kind, "order": r.order_id,
                           "version": f"v{r.report_version}{' (C)' if r.correction else ''}", "status": r.status,
                           "status_label": labels.get(r.status, r.status), "color": STATUS_COLOR.get(r.status, "grey"),
                           "attempts": r.attempts, "error": r.last_error[:200], "created": page.dt(r.created_at),
                           "delivered": page.dt(r.delivered_at), "can_retry": can_retry,
                           "retry_label": page.t("retry")} for r in rows]
            table.update()

        def retry(outbox_id: int) -> None:
            user = page.act(retry_permission)
            if user is None:
                return
            try:
                with ctx.db.write() as session:
                    emr_outbox.retry(session, outbox_id, user.username)
            except (LookupError, ValueError) as exc:
                ui.notify(str(exc), type="negative")
            else:
                ui.notify(page.t("done"), type="positive")
            load()

        table.on("retry", lambda e: retry(int(e.args)))
        status.on_value_change(load)
        destination.on_value_change(load)
        load()
        ui.timer(10.0, load)
