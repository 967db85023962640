"""``/instruments``: live link status, raw message viewer (decoded and hex), quarantine with reprocess,
unmatched results with assign-to-specimen."""

from __future__ import annotations

from nicegui import run, ui

from lis.context import LisContext
from lis.events import MessageQuarantined, ResultsIngested
from lis.models import RawMessageStatus
from lis.services import audit
from lis.services.ingest import UnknownInstrument
from lis.services.journal import (
    AssignError,
    assign_to_specimen,
    list_raw,
    quarantine_counts,
    raw_data,
    unmatched_results,
)
from web import live
from web.i18n import tr
from web.layout import Page, lis_page, title

STATE_COLOR = {"connected": "positive", "listening": "primary", "connecting": "warning", "disconnected": "grey",
               "error": "negative", "stopped": "grey"}


def decoded(data: bytes) -> str:
    """Control characters shown by name (<STX>, <CR>…) so framing problems are visible."""
    names = {0x02: "<STX>", 0x03: "<ETX>", 0x04: "<EOT>", 0x05: "<ENQ>", 0x06: "<ACK>", 0x15: "<NAK>",
             0x17: "<ETB>", 0x0B: "<VT>", 0x1C: "<FS>", 0x0A: "<LF>"}
    out = []
    for byte in data:
        if byte == 0x0D:
            out.append("<CR>\n")
        elif byte in names:
            out.append(names[byte])
        elif byte < 0x20 or byte == 0x7F:
            out.append(f"<{byte:02X}>")
        else:
            out.append(bytes([byte]).decode("latin-1"))
    text = "".join(out)
    try:  # show Vietnamese names correctly when the bytes are UTF-8
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return text


def hexdump(data: bytes, width: int = 16) -> str:
    lines = []
    for offset in range(0, len(data), width):
        chunk = data[offset:offset + width]
        ascii_ = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<{width * 3}} {ascii_}")
    return "\n".join(lines)


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/instruments")
    def instruments(page: Page) -> None:
        title(page.t("nav_instruments"))
        status_row = ui.row().classes("w-full gap-3")

        def render_status() -> None:
            live_status = ctx.status.snapshot()
            with ctx.db.read() as session:
                quarantined = quarantine_counts(session)
            status_row.clear()
            with status_row:
                for inst in ctx.config.instruments:
                    s = live_status.get(inst.name, {})
                    state = s.get("state", "stopped")
                    with ui.card().classes("lis-card q-pa-sm gap-1").style("min-width: 260px"):
                        with ui.row().classes("items-center gap-2"):
                            ui.badge(tr("link", state, page.lang), color=STATE_COLOR.get(state, "grey")).props(
                                f"data-testid=state-{inst.name}")
                            ui.label(inst.name).classes("text-weight-bold")
                            ui.label(inst.model).classes("muted text-caption")
                        ui.label(f"{inst.protocol.upper()} · {inst.transport} · {s.get('peer') or ''}").classes(
                            "text-caption")
                        ui.label(f"{page.t('last_message')}: {page.dt(s.get('last_message_at'), seconds=True)}"
                                 f" · {page.t('messages')}: {s.get('messages', 0)}").classes("text-caption")
                        ui.label(f"{page.t('errors')}: {s.get('errors', 0)} · {page.t('quarantined')}: "
                                 f"{quarantined.get(inst.name, 0)}").classes("text-caption")
                        if s.get("backlog"):  # acknowledged, waiting in the spool (database slow or down)
                            ui.label(f"{page.t('backlog')}: {s['backlog']}").classes(
                                "text-caption text-warning").props(f"data-testid=backlog-{inst.name}").mark(
                                f"backlog-{inst.name}")
                        if s.get("last_error"):
                            ui.label(str(s["last_error"])).classes("text-caption text-negative")

        render_status()
        ui.timer(2.0, render_status)

        with ui.tabs().props("dense align=left no-caps").classes("text-primary") as tabs:
            tab_raw = ui.tab(page.t("raw_messages"))
            tab_q = ui.tab(page.t("quarantine"))
            tab_u = ui.tab(page.t("unmatched_results"))
        with ui.tab_panels(tabs, value=tab_raw).classes("w-full lis-card"):
            with ui.tab_panel(tab_raw):
                raw_table = _raw_table(page)
            with ui.tab_panel(tab_q):
                q_table = _raw_table(page)
            with ui.tab_panel(tab_u):
                u_cols = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
                    ("id", "details"), ("instrument", "instrument"), ("accession", "specimen"),
                    ("code", "instrument_code"), ("value", "value"), ("reason", "reason"), ("time", "received"))]
                u_table = ui.table(columns=u_cols, rows=[], row_key="id", pagination=20).props(
                    f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full")
                u_table.mark("unmatched").on("rowClick", lambda e: assign_dialog(e.args[1]))

        def load() -> None:
            with ctx.db.read() as session:
                raw, _ = list_raw(session, limit=200)
                quarantined, _ = list_raw(session, statuses=(RawMessageStatus.ERROR, RawMessageStatus.UNMATCHED),
                                          limit=200)
                unmatched = unmatched_results(session)
            for table, items in ((raw_table, raw), (q_table, quarantined)):
                table.rows = [{"id": m.id, "instrument": m.instrument, "protocol": m.protocol, "status": m.status,
                               "size": m.size, "results": m.result_count, "error": m.error,
                               "time": page.dt(m.received_at, seconds=True)} for m in items]
                table.update()
            u_table.rows = [{"id": r.id, "instrument": r.instrument, "accession": r.accession,
                             "code": r.instrument_test_code, "value": f"{r.value} {r.units}",
                             "reason": r.unmatched_reason, "time": page.dt(r.received_at, seconds=True)}
                            for r in unmatched]
            u_table.update()

        def show_message(raw_id: int) -> None:
            with ctx.db.read() as session:
                found = raw_data(session, raw_id)
            if found is None:
                return
            summary, data = found
            with ui.dialog().props("maximized=false") as dialog, ui.card().classes("q-pa-md").style(
                    "width: 900px; max-width: 95vw"):
                with ui.row().classes("items-center w-full justify-between"):
                    ui.label(f"#{summary.id} · {summary.instrument} · {summary.status} · {summary.size} B").classes(
                        "text-subtitle1")
                    ui.button(icon="close", on_click=dialog.close).props("flat round dense")
                if summary.error:
                    ui.label(summary.error).classes("text-negative")
                with ui.tabs().props("dense no-caps align=left") as view_tabs:
                    t_dec = ui.tab(page.t("decoded"))
                    t_hex = ui.tab(page.t("hex"))
                with ui.tab_panels(view_tabs, value=t_dec).classes("w-full"):
                    with ui.tab_panel(t_dec):
                        ui.label(decoded(data)).classes("raw").style(
                            "white-space: pre-wrap; font-family: monospace; font-size: 12px").props(
                            "data-testid=raw-decoded").mark("raw-decoded")
                    with ui.tab_panel(t_hex):
                        ui.label(hexdump(data)).style("white-space: pre; font-family: monospace; font-size: 12px") \
                            .props("data-testid=raw-hex").mark("raw-hex")
                if summary.direction == "in":
                    ui.button(page.t("reprocess"), icon="replay",
                              on_click=lambda: reprocess(summary.id, dialog)).props("unelevated").set_enabled(
                        page.user.can("raw:reprocess"))
            dialog.open()

        async def reprocess(raw_id: int, dialog: ui.dialog) -> None:
            user = page.act("raw:reprocess")
            if user is None:
                return
            try:
                outcome = await run.io_bound(ctx.ingest.process, raw_id)
            except (UnknownInstrument, LookupError) as exc:
                ui.notify(str(exc), type="negative")
                return
            with ctx.db.write() as session:
                audit.record(session, user.username, "raw.reprocess", "raw_message", raw_id,
                             after={"status": outcome.status, "results": len(outcome.result_ids)}, via="web")
            ui.notify(page.t("reprocessed", s=outcome.status + (f": {outcome.error}" if outcome.error else "")),
                      type="positive" if not outcome.error else "warning")
            dialog.close()
            load()

        def assign_dialog(row: dict[str, object]) -> None:
            with ui.dialog() as dialog, ui.card().classes("q-pa-md w-96"):
                ui.label(f"{page.t('assign_specimen')}: {row['code']} = {row['value']}").classes("text-subtitle2")
                barcode = ui.input(page.t("specimen")).props("outlined dense autofocus").classes("w-full")

                def assign() -> None:
                    user = page.act("raw:reprocess")
                    if user is None:
                        return
                    try:
                        with ctx.db.write() as session:
                            assign_to_specimen(session, int(row["id"]), barcode.value or "",  # type: ignore[arg-type]
                                               user.username)
                    except AssignError as exc:
                        barcode.error = str(exc)
                        return
                    ui.notify(page.t("assigned", n=barcode.value), type="positive")
                    dialog.close()
                    load()

                with ui.row():
                    ui.button(page.t("assign_specimen"), on_click=assign).props("unelevated")
                    ui.button(page.t("cancel"), on_click=dialog.close).props("flat")
            dialog.open()

        raw_table.on("rowClick", lambda e: show_message(int(e.args[1]["id"])))
        q_table.mark("quarantine").on("rowClick", lambda e: show_message(int(e.args[1]["id"])))
        load()
        live.subscribe(ctx.bus, (ResultsIngested, MessageQuarantined), lambda _events: load())


def _raw_table(page: Page) -> ui.table:
    columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
        ("id", "details"), ("time", "received"), ("instrument", "instrument"), ("protocol", "protocol"),
        ("status", "status"), ("size", "size"), ("results", "results"), ("error", "errors"))]
    table = ui.table(columns=columns, rows=[], row_key="id", pagination=20).props(
        f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full")
    table.add_slot("body-cell-status", '''<q-td :props="props">
        <q-badge :color="props.value === 'error' ? 'negative' : props.value === 'unmatched' ? 'warning'
          : props.value === 'processed' ? 'positive' : 'grey'" :label="props.value" /></q-td>''')
    return table
