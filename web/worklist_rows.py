"""How one worklist row looks: flags as colour + icon + words, previous value and delta, the actions.

Everything user-supplied (patient names, comments, values) is rendered with Vue text interpolation, which
escapes HTML: a name like ``<b>x</b>`` is shown as those characters, never interpreted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lis.services.worklist import WorklistRow
from web.i18n import tr

if TYPE_CHECKING:
    from web.layout import Page

TABLE_SLOT = r'''
<tr :class="(props.row.cursor ? 'wl-cursor ' : '') + (props.row.first ? 'wl-first ' : '') +
            (props.selected ? 'selected' : '')"
      :data-result-id="props.row.id" :data-status="props.row.status" :data-specimen="props.row.specimen"
      @click="$parent.$emit('cursor', props.row.id)">
  <td class="q-table--col-auto-width"><input type="checkbox" class="wl-check" :checked="props.selected"
      @click.stop @change="props.selected = $event.target.checked" /></td>
  <td style="vertical-align: top">
    <template v-if="props.row.first">
      <div class="text-weight-bold">{{ props.row.specimen }}<span v-if="props.row.stat" class="wl-stat">{{
        props.row.stat_label }}</span></div>
      <div class="text-caption text-grey-8" data-testid="patient-cell">{{ props.row.patient }}</div>
    </template>
  </td>
  <td class="wl-test" :title="props.row.test_name"><b>{{ props.row.test }}</b>
    <span class="text-caption text-grey-7 q-ml-xs">{{ props.row.test_name }}</span></td>
  <td><span :class="props.row.value_class" data-testid="value">{{ props.row.value }}</span>
    <span class="text-grey-7 text-caption q-ml-xs">{{ props.row.units }}</span></td>
  <td class="text-grey-8">{{ props.row.range }}</td>
  <td>{{ props.row.previous }}<div class="text-caption text-grey-7">{{ props.row.previous_at }}</div></td>
  <td :class="props.row.delta_bad ? 'wl-delta-bad' : ''">{{ props.row.delta }}</td>
  <td><span v-for="f in props.row.flag_list" :key="f.code" class="wl-flag" :style="{background: f.color}"
      :data-flag="f.code"><i class="material-icons">{{ f.icon }}</i>{{ f.label }}</span></td>
  <td><span class="wl-status" :style="{color: props.row.status_color, borderColor: props.row.status_color}"
      data-testid="status">{{ props.row.status_label }}</span>
    <div v-if="props.row.why" class="wl-why" data-testid="why">{{ props.row.why }}</div>
    <div v-if="props.row.comment" class="wl-comment" data-testid="comment">{{ props.row.comment }}</div></td>
  <td class="q-table--col-auto-width" style="white-space: nowrap">
    <button v-for="a in props.row.action_list" :key="a.action" type="button" class="wl-btn" :title="a.title"
      :data-action="a.action" :style="{color: a.color}"
      @click.stop="$parent.$emit('act', {id: props.row.id, action: a.action})"><i class="material-icons">{{
      a.icon }}</i></button>
  </td>
</tr>
'''

STATUS_COLOR = {"received": "#6b7785", "pending": "#b45309", "autoverified": "#0f766e",
                "technically_validated": "#2f5d8a", "released": "#15803d", "rerun_requested": "#6d28d9",
                "rejected": "#b91c1c", "amended": "#6b7785"}
CSS = """
.wl-check { width: 16px; height: 16px; accent-color: #2f5d8a; cursor: pointer; }
tr.wl-cursor td { background: #e3efff !important; }
tr.wl-first td { border-top: 2px solid #d5dde7; }
.wl-test { max-width: 240px; overflow: hidden; text-overflow: ellipsis; }
.wl-stat { background: #b91c1c; color: white; border-radius: 3px; padding: 0 5px; margin-left: 6px;
           font-size: 11px; font-weight: 600; }
.wl-flag { display: inline-flex; align-items: center; gap: 2px; color: white; border-radius: 3px;
           padding: 1px 6px 1px 3px; margin: 1px 3px 1px 0; font-size: 11px; white-space: nowrap; }
.wl-flag .material-icons, .wl-btn .material-icons { font-size: 16px; }
.wl-status { border: 1px solid; border-radius: 3px; padding: 0 5px; font-size: 12px; white-space: nowrap; }
.wl-why { font-size: 11px; color: #6b7785; white-space: normal; max-width: 300px; line-height: 1.15;
          margin-top: 2px; }
.wl-comment { font-size: 11px; color: #334155; white-space: pre-wrap; max-width: 300px; margin-top: 2px; }
.wl-delta-bad { color: #6d28d9; font-weight: 700; }
.wl-btn { border: 0; background: transparent; cursor: pointer; padding: 2px 4px; border-radius: 50%; }
.wl-btn:hover { background: #e8eef5; }
"""
NORMAL_INSTRUMENT_FLAGS = ("", "N")  # ASTM/HL7 "N" = normal: not a flag
OPEN_FOR_ACTIONS = ("pending", "autoverified", "technically_validated", "rerun_requested")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:+.4g}"


def flags(row: WorklistRow, page: Page) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    lis = row.lis_flags
    if row.critical:
        out.append({"code": "critical", "icon": "warning", "color": "#b91c1c",
                    "label": f"{page.t('flag_critical')} {lis}".strip()})
    elif lis.startswith("H"):
        out.append({"code": "H", "icon": "arrow_upward", "color": "#c2410c", "label": page.t("flag_H")})
    elif lis.startswith("L"):
        out.append({"code": "L", "icon": "arrow_downward", "color": "#1d4ed8", "label": page.t("flag_L")})
    elif lis == "A":
        out.append({"code": "A", "icon": "error_outline", "color": "#c2410c", "label": "A"})
    if row.delta_ok is False:
        out.append({"code": "delta", "icon": "change_history", "color": "#6d28d9", "label": page.t("flag_delta")})
    if row.held:
        out.append({"code": "qc", "icon": "pause_circle", "color": "#7c5a3a",
                    "label": f"QC: {tr('hold', row.held, page.lang)}"})
    if row.instrument_flags.strip() not in NORMAL_INSTRUMENT_FLAGS:
        out.append({"code": "instrument", "icon": "memory", "color": "#546e7a",
                    "label": f"{page.t('instrument')}: {row.instrument_flags.strip()}"})
    return out


def value_class(row: WorklistRow) -> str:
    if row.critical:
        return "flag-crit"
    if row.lis_flags.startswith("H"):
        return "flag-H"
    if row.lis_flags.startswith("L"):
        return "flag-L"
    return "text-weight-medium"


def actions(row: WorklistRow, page: Page, perms: dict[str, bool]) -> list[dict[str, str]]:
    """The buttons this user's role may use on this row (the server checks again when one is used)."""
    open_ = row.status in OPEN_FOR_ACTIONS
    shown = []
    if open_ and (perms["validate"] or perms["release"]):
        shown.append(("validate", "check", "#15803d", "validate"))
    if perms["rerun"] and row.status in ("pending", "autoverified", "technically_validated"):
        shown.append(("rerun", "replay", "#2f5d8a", "rerun"))
    if perms["reject"] and row.status in (*OPEN_FOR_ACTIONS, "received"):
        shown.append(("reject", "block", "#b91c1c", "reject"))
    if perms["validate"] and row.status in (*OPEN_FOR_ACTIONS, "received"):
        shown.append(("comment", "comment", "#475569", "add_comment"))
    if perms["amend"] and row.status == "released":
        shown.append(("amend", "edit", "#b45309", "amend"))
    return [{"action": a, "icon": i, "color": c, "title": page.t(k)} for a, i, c, k in shown]


def row_dict(row: WorklistRow, page: Page, *, first: bool, perms: dict[str, bool]) -> dict[str, Any]:
    why = row.status_reason or row.reasons
    return {
        "id": row.id, "version": row.version, "status": row.status, "status_label": page.t("st_" + row.status),
        "status_color": STATUS_COLOR.get(row.status, "#6b7785"), "specimen": row.specimen, "first": first,
        "stat": row.priority == "stat", "stat_label": page.t("stat"), "patient": row.patient_name,
        "patient_id": row.patient_id, "test": row.test_code,
        "test_name": row.test_name_vi if page.lang == "vi" else row.test_name_en,
        "value": row.value, "units": row.units, "value_class": value_class(row), "range": row.reference_range,
        "previous": row.previous_value or "", "previous_at": page.dt(row.previous_at) if row.previous_at else "",
        "delta": _number(row.delta_change), "delta_bad": row.delta_ok is False, "flag_list": flags(row, page),
        "why": why, "comment": row.comment,
        "action_list": actions(row, page, perms), "cursor": False,
    }
