"""``/admin``: users and roles (admin), test catalogue with ranges, panels, instruments and code maps."""

from __future__ import annotations

from nicegui import ui

from lis.context import LisContext
from lis.models import Role
from lis.services import catalog_view
from lis.services.user_admin import list_users, set_active, set_role, unlock
from lis.services.users import UserError, add_user
from web import extras
from web.layout import Page, lis_page, title


def register(ctx: LisContext) -> None:
    @lis_page(ctx, "/admin")
    def admin(page: Page) -> None:
        title(page.t("nav_admin"))
        with ui.tabs().props("dense align=left no-caps").classes("text-primary") as tabs:
            t_users = ui.tab(page.t("users"))
            t_cat = ui.tab(page.t("catalogue"))
            t_inst = ui.tab(page.t("instrument_config"))
            t_rules = ui.tab(page.t("av_rules"))
        with ui.tab_panels(tabs, value=t_users).classes("w-full lis-card"):
            with ui.tab_panel(t_users):
                _users(ctx, page)
            with ui.tab_panel(t_cat):
                _catalogue(ctx, page)
            with ui.tab_panel(t_inst):
                _instruments(ctx, page)
            with ui.tab_panel(t_rules):
                extras.autoverification_rules(ctx, page)


def _users(ctx: LisContext, page: Page) -> None:
    can = page.user.can("users:write")
    roles = {r: page.t("role_" + r) for r in Role.ALL}
    columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
        ("username", "username"), ("full_name", "full_name"), ("role", "role"), ("active", "active"),
        ("locked", "locked"))]
    table = ui.table(columns=columns, rows=[], row_key="username").props("dense flat").classes("w-full").mark("users")
    table.add_slot("body-cell-role", '''<q-td :props="props">
        <q-select dense borderless emit-value map-options :options="props.row.role_options"
          :model-value="props.value" :disable="!props.row.can"
          @update:model-value="v => $parent.$emit('role', {username: props.row.username, role: v})" /></q-td>''')
    table.add_slot("body-cell-active", '''<q-td :props="props">
        <q-toggle dense :model-value="props.value" :disable="!props.row.can"
          @update:model-value="v => $parent.$emit('active', {username: props.row.username, active: v})" /></q-td>''')
    table.add_slot("body-cell-locked", '''<q-td :props="props">
        <q-btn v-if="props.value" dense flat color="warning" icon="lock_open" :disable="!props.row.can"
          @click="$parent.$emit('unlock', props.row.username)" /></q-td>''')

    def load() -> None:
        from lis.models import utcnow

        with ctx.db.read() as session:
            users = list_users(session)
        now = utcnow()
        options = [{"label": label, "value": value} for value, label in roles.items()]
        table.rows = [{"username": u.username, "full_name": u.full_name, "role": u.role, "active": u.active,
                       "locked": bool(u.locked_until and u.locked_until > now), "can": can,
                       "role_options": options} for u in users]
        table.update()

    def change(fn: object, *args: object) -> None:
        user = page.act("users:write")
        if user is None:
            load()
            return
        try:
            with ctx.db.write() as session:
                fn(session, *args, actor=user.username)  # type: ignore[operator]
        except UserError as exc:
            ui.notify(str(exc), type="negative")
        else:
            ui.notify(page.t("saved"), type="positive")
        load()

    table.on("role", lambda e: change(set_role, e.args["username"], e.args["role"]))
    table.on("active", lambda e: change(set_active, e.args["username"], e.args["active"]))
    table.on("unlock", lambda e: change(unlock, e.args))
    load()
    if not can:
        return
    with ui.expansion(page.t("add_user"), icon="person_add").classes("w-full"), ui.row().classes(
            "items-start gap-2"):
        username = ui.input(page.t("username")).props("outlined dense")
        full_name = ui.input(page.t("full_name")).props("outlined dense")
        role = ui.select(roles, value=Role.TECHNICIAN, label=page.t("role")).props("outlined dense").classes("w-40")
        password = ui.input(page.t("password"), password=True).props("outlined dense")

        def create() -> None:
            username.error = password.error = None
            user = page.act("users:write")
            if user is None:
                return
            try:
                with ctx.db.write() as session:
                    add_user(session, (username.value or "").strip(), role.value, password.value or "",
                             full_name=full_name.value or "", language=page.lang, actor=user.username)
            except UserError as exc:
                (password if "password" in str(exc) else username).error = str(exc)
                return
            ui.notify(page.t("user_created", n=username.value), type="positive")
            username.value = full_name.value = password.value = ""
            load()

        ui.button(page.t("add_user"), on_click=create).props("unelevated")


def _catalogue(ctx: LisContext, page: Page) -> None:
    with ctx.db.read() as session:
        tests = catalog_view.tests(session)
        ranges = catalog_view.ranges(session)
        panels = catalog_view.panels(session)

    def describe(code: str) -> tuple[str, str]:
        normal, critical = [], []
        for r in ranges.get(code, []):
            who = "" if r.sex == "U" else f"{page.t('sex_' + r.sex)} "
            if r.text:
                normal.append(f"{who}{r.text}")
            elif r.low is not None or r.high is not None:
                normal.append(f"{who}{'' if r.low is None else f'{r.low:g}'}–{'' if r.high is None else f'{r.high:g}'}")
            if r.critical_low is not None or r.critical_high is not None:
                critical.append(f"{who}<{r.critical_low if r.critical_low is not None else '—'} "
                                f">{r.critical_high if r.critical_high is not None else '—'}")
        return "; ".join(normal), "; ".join(critical)

    rows = []
    for test in tests:
        normal, critical = describe(test.code)
        rows.append({"code": test.code, "name": test.name_vi if page.lang == "vi" else test.name_en,
                     "section": test.section, "loinc": test.loinc, "unit": test.unit, "range": normal,
                     "critical": critical})
    columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left", "sortable": True} for k, lbl in (
        ("code", "code"), ("name", "test"), ("section", "section"), ("loinc", "loinc"), ("unit", "unit"),
        ("range", "ranges"), ("critical", "critical_limits"))]
    search = ui.input(page.t("search")).props("outlined dense clearable").classes("w-64")
    table = ui.table(columns=columns, rows=rows, row_key="code", pagination=25).props("dense flat").classes("w-full")
    search.bind_value_to(table, "filter")
    ui.label(", ".join(f"{p.code}: {' '.join(members)}" for p, members in panels)).classes("text-caption muted")


def _instruments(ctx: LisContext, page: Page) -> None:
    columns = [{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
        ("name", "instrument"), ("model", "details"), ("profile", "profile"), ("protocol", "protocol"),
        ("connection", "connection"))]
    rows = [{"name": i.name, "model": i.model, "profile": i.profile, "protocol": i.protocol,
             "connection": f"{i.transport} {i.host}:{i.port}" if i.transport != "serial" else i.device}
            for i in ctx.config.instruments]
    ui.table(columns=columns, rows=rows, row_key="name").props("dense flat").classes("w-full")
    with ctx.db.read() as session:
        maps = catalog_view.code_maps(session)
    ui.label(page.t("code_maps")).classes("text-subtitle2 q-mt-md")
    ui.table(columns=[{"name": k, "label": page.t(lbl), "field": k, "align": "left"} for k, lbl in (
        ("instrument", "instrument"), ("instrument_code", "instrument_code"), ("test_code", "test"))],
        rows=[{"id": m.id, "instrument": m.instrument, "instrument_code": m.instrument_code,
               "test_code": m.test_code} for m in maps], row_key="id").props(
        f'dense flat no-data-label="{page.t("no_data")}"').classes("w-full")
