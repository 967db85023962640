"""The AUTO15 rule simulator on a synthetic history, and the pandas TAT report (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from lis.context import LisContext
from lis.models import Result
from lis.services.workflow import WorkflowService
from tests.lis.workflow.helpers import Obs, ingest, order, row

TECH = {"actor": "tech", "role": "technician"}
DOC = {"actor": "doc", "role": "validator"}

# (value, what the people did): 5 normal released, 2 high released, 1 normal rejected (clotted), 1 rerun
HISTORY = [("4.8", "release"), ("5.1", "release"), ("5.6", "release"), ("6.0", "release"), ("4.4", "release"),
           ("11.5", "release"), ("14.2", "release"), ("5.3", "reject"), ("9.0", "rerun")]


def build_history(ctx: LisContext, wf: WorkflowService) -> dict[str, int]:
    ids: dict[str, int] = {}
    for i, (value, decision) in enumerate(HISTORY):
        barcode = f"H{i:02d}"
        order(ctx, barcode, ["GLU"])
        rid = ingest(ctx, barcode, [Obs("GLU", value, "mmol/L")])[0]
        version = row(ctx, rid).version
        if decision == "release":
            version = wf.act(rid, "validate", version, **TECH).result.version
            wf.act(rid, "release", version, **DOC)
        elif decision == "reject":
            wf.act(rid, "reject", version, **TECH, reason="clotted")
        else:
            wf.act(rid, "rerun", version, **TECH, reason="check")
        ids[value] = rid
    return ids


def test_simulator_reports_rate_and_disagreements(ctx: LisContext, wf: WorkflowService) -> None:
    ids = build_history(ctx, wf)
    report = wf.simulate({"GLU": {"av_low": 3.9, "av_high": 10.0}})
    assert report.total == 9 and report.human_released == 7 and report.human_not_released == 2
    # would auto-release the seven values inside 3.9-10: 4.4 4.8 5.1 5.3 5.6 6.0 9.0
    assert report.would_autoverify == 7
    dangerous = sorted(d["value"] for d in report.would_release_human_did_not)
    assert dangerous == ["5.3", "9.0"]  # people rejected / reran them: explain before go-live
    held = sorted(d["value"] for d in report.would_hold_human_released)
    assert held == ["11.5", "14.2"]
    assert report.agree == 5 and report.failed_rules == {"autoverification_range": 2}
    narrower_rules = ["qc_accepted", "not_critical", "autoverification_range"]
    narrower = wf.simulate({"GLU": {"av_low": 3.9, "av_high": 6.4, "rules": narrower_rules}})
    assert narrower.would_autoverify == 6 and ids["9.0"] not in [d["result_id"] for d in
                                                                 narrower.would_release_human_did_not]
    assert wf.simulate(test_codes=["K"]).total == 0  # no history, nothing to say


def test_tat_report_median_and_p90_per_test_section_and_day(ctx: LisContext, wf: WorkflowService) -> None:
    ids = build_history(ctx, wf)
    released = [ids[v] for v, d in HISTORY if d == "release"]
    minutes = [10, 20, 30, 40, 50, 60, 70]
    day = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    with ctx.db.write() as session:
        for rid, m in zip(released, minutes, strict=True):
            session.connection().execute(update(Result).where(Result.id == rid)  # type: ignore[arg-type]
                                         .values(turnaround_seconds=m * 60, released_at=day + timedelta(minutes=m)))
    report = wf.tat_report()
    assert report["overall"] == [{"section": "chemistry", "test_code": "GLU", "count": 7, "median_minutes": 40.0,
                                  "p90_minutes": pytest.approx(64.0)}]
    assert report["by_day"][0]["day"] == "2026-11-20" and report["by_day"][0]["count"] == 7
    assert wf.tat_report(since=day + timedelta(days=1))["overall"] == []
    assert row(ctx, released[0]).turnaround_seconds == 600
