"""Evaluation on arrival (SQLite and PostgreSQL): flags, ranges by age and sex, censored values, units,
plausibility, delta, QC holds, autoverification and auto-release, reruns, reflex and calculated tests."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from lis.context import LisContext
from lis.events import ResultReleased
from lis.models import (
    CalculatedInput,
    OrderTest,
    QcRuleSet,
    Result,
    ResultEvaluation,
    ResultStatus,
    TestDefinition,
)
from lis.services.workflow import WorkflowService, policies
from lis.services.workflow.wiring import EvaluationCatchUp
from tests.lis.workflow.helpers import Obs, by_test, ingest, order, row


def evaluation(ctx: LisContext, result_id: int) -> ResultEvaluation:
    with ctx.db.read() as session:
        found = session.get(ResultEvaluation, result_id)
        assert found is not None
        return found


def enable_av(ctx: LisContext, test: str, low: float | None = None, high: float | None = None, **kw: object) -> None:
    with ctx.db.write() as session:
        policies.put_rule_set(session, test, "boss", av_low=low, av_high=high, **kw)  # type: ignore[arg-type]


def test_every_result_is_evaluated_on_arrival(ctx: LisContext, wf: WorkflowService) -> None:
    order(ctx, "E1", ["GLU", "K", "TSH", "HBSAG", "NA"])
    ingest(ctx, "E1", [Obs("GLU", "5,1", "mmol/L"), Obs("K", "7.0", "mmol/L", flags="H"),
                       Obs("TSH", "<0.01", "m[IU]/L"), Obs("HBSAG", "Positive"), Obs("NA", "----", "mmol/L")])
    rows = by_test(ctx, "E1")
    assert {k: (r.status, r.lis_flags, r.critical) for k, r in rows.items()} == {
        "GLU": ("pending", "", False), "K": ("pending", "HH", True), "TSH": ("pending", "L", False),
        "HBSAG": ("pending", "A", False), "NA": ("pending", "", False),
    }
    assert rows["K"].abnormal_flags == "H"  # the instrument's flag kept beside the LIS flag
    assert "autoverification is not enabled for GLU" in rows["GLU"].status_reason
    assert "critical value (HH)" in rows["K"].status_reason
    tsh = evaluation(ctx, rows["TSH"].id or 0)
    assert tsh.comparator == "<" and tsh.range_text == "0.27-4.2" and tsh.decision == "pending"
    assert rows["GLU"].version == 2  # the evaluation went through the optimistic lock too
    rules = json.loads(evaluation(ctx, rows["NA"].id or 0).rules)
    assert {"rule": "numeric", "passed": False, "detail": "value '----' is not a number"} in rules


def test_autoverification_releases_only_when_every_rule_passes(ctx: LisContext, wf: WorkflowService) -> None:
    enable_av(ctx, "GLU", 3.0, 10.0)
    cases = {
        "A1": (Obs("GLU", "5.0", "mmol/L"), ResultStatus.AUTOVERIFIED, ""),
        "A2": (Obs("GLU", "12.0", "mmol/L"), ResultStatus.PENDING, "above the autoverification range"),
        "A3": (Obs("GLU", "5.0", "mmol/L", flags="W"), ResultStatus.PENDING, "instrument error flag W"),
        "A4": (Obs("GLU", "5.0", "mg/dL"), ResultStatus.PENDING, "not the catalogue unit"),
        "A5": (Obs("GLU", "5.0", "mmol/L", comment="lipaemic"), ResultStatus.PENDING, "comment: lipaemic"),
        "A6": (Obs("GLU", "5.0", "mmol/L", status="X"), ResultStatus.PENDING, "could not do the test"),
        "A7": (Obs("GLU", "1.5", "mmol/L"), ResultStatus.PENDING, "critical value (LL)"),
    }
    for barcode, (obs, _, _) in cases.items():
        order(ctx, barcode, ["GLU"])
        ingest(ctx, barcode, [obs])
    for barcode, (_, status, reason) in cases.items():
        result = by_test(ctx, barcode)["GLU"]
        assert result.status == status, barcode
        assert reason in result.status_reason, (barcode, result.status_reason)
    passed = by_test(ctx, "A1")["GLU"]
    assert passed.validated_by == "autoverification" and passed.released_at is None  # waits for release
    rules = json.loads(evaluation(ctx, passed.id or 0).rules)
    assert [r["rule"] for r in rules if r["passed"]] == [
        "qc_accepted", "no_error_flag", "numeric", "unit", "plausible", "not_critical", "autoverification_range",
        "delta", "no_rerun_pending", "no_comment"]


def test_auto_release_policy_releases_with_hooks_and_event(ctx: LisContext, wf: WorkflowService) -> None:
    enable_av(ctx, "GLU", 3.0, 10.0)
    with ctx.db.write() as session:
        policies.put_section_policy(session, "chemistry", "boss", auto_release=True)
    seen_in_tx: list[tuple[list[str], bool]] = []

    def hook(session: Session, released: list[Result], correction: bool) -> None:
        fresh = session.exec(select(Result.status).where(Result.id == released[0].id)).one()
        seen_in_tx.append(([fresh], correction))

    wf.add_release_hook(hook)
    events: list[ResultReleased] = []
    ctx.bus.subscribe(ResultReleased, events.append)
    order_id = order(ctx, "R1", ["GLU"])
    ingest(ctx, "R1", [Obs("GLU", "5.0", "mmol/L")])
    result = by_test(ctx, "R1")["GLU"]
    assert result.status == "released" and result.released_by == "autoverification"
    assert result.turnaround_seconds is not None and result.turnaround_seconds >= 0
    assert seen_in_tx == [(["released"], False)]
    assert events == [ResultReleased((result.id or 0,), (order_id,), False, "autoverification")]


def test_failing_release_hook_rolls_back_and_catch_up_finishes(ctx: LisContext, wf: WorkflowService) -> None:
    enable_av(ctx, "GLU", 3.0, 10.0)
    with ctx.db.write() as session:
        policies.put_section_policy(session, "chemistry", "boss", auto_release=True)

    def broken(session: Session, released: list[Result], correction: bool) -> None:
        raise RuntimeError("outbox table missing")

    remove = wf.add_release_hook(broken)
    order(ctx, "R2", ["GLU"])
    ingest(ctx, "R2", [Obs("GLU", "5.0", "mmol/L")])
    result = by_test(ctx, "R2")["GLU"]
    assert result.status == "received" and result.version == 1  # nothing half-applied
    remove()
    asyncio.run(EvaluationCatchUp(wf).start())
    assert row(ctx, result.id or 0).status == "released"


def test_catch_up_evaluates_results_that_missed_the_event(ctx: LisContext) -> None:
    order(ctx, "C1", ["GLU"])
    ingest(ctx, "C1", [Obs("GLU", "5.0", "mmol/L")])  # nobody subscribed
    result = by_test(ctx, "C1")["GLU"]
    assert result.status == "received"
    asyncio.run(EvaluationCatchUp(ctx.workflow).start())
    assert row(ctx, result.id or 0).status == "pending"


def test_result_held_by_qc_is_not_autoverified(ctx: LisContext, wf: WorkflowService) -> None:
    enable_av(ctx, "GLU", 3.0, 10.0)
    with ctx.db.write() as session:  # GLU on xn-1 is under QC and no run was accepted: held (fail closed)
        session.add(QcRuleSet(instrument="xn-1", test_code="GLU", rejection_rules="1_3s"))
    order(ctx, "Q1", ["GLU"])
    ingest(ctx, "Q1", [Obs("GLU", "5.0", "mmol/L")])
    result = by_test(ctx, "Q1")["GLU"]
    assert result.status == "pending" and "held by QC" in result.status_reason


def _collected_at_age(days: int) -> tuple[date, datetime]:
    collected = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi
    return date(2026, 11, 26) - timedelta(days=days), collected


# the seed's "18 years" is round(18 × 365.25) = 6574 days: the adult band starts there (inclusive) and the
# paediatric band ends there (exclusive)
@pytest.mark.parametrize(("sex", "age_days", "value", "flag"), [
    ("F", 6574, "115", "L"),  # adult woman: 120-155
    ("F", 6573, "115", ""),  # a day younger: paediatric 110-160
    ("M", 6574, "125", "L"),  # adult man: 130-170
    ("U", 9000, "125", ""),  # adult of unknown sex: no sex-specific range applies, no U adult range
])
def test_reference_range_by_sex_and_age_at_collection(ctx: LisContext, wf: WorkflowService, sex: str,
                                                      age_days: int, value: str, flag: str) -> None:
    birth, collected = _collected_at_age(age_days)
    order(ctx, "H1", ["HGB"], sex=sex, birth=birth, collected_at=collected)
    ingest(ctx, "H1", [Obs("HGB", value, "g/L")])
    result = by_test(ctx, "H1")["HGB"]
    assert result.lis_flags == flag
    assert evaluation(ctx, result.id or 0).age_days == age_days


def test_delta_check_against_previous_result_in_window(ctx: LisContext, wf: WorkflowService) -> None:
    enable_av(ctx, "K", 3.0, 6.0)
    with ctx.db.write() as session:
        policies.put_delta_rule(session, "K", "boss", window_hours=72, abs_limit=1.0)
    nid = "079085009999"
    order(ctx, "D1", ["K"], national_id=nid)
    first = ingest(ctx, "D1", [Obs("K", "4.0", "mmol/L")])[0]
    order(ctx, "D2", ["K"], national_id=nid)
    second = ingest(ctx, "D2", [Obs("K", "5.5", "mmol/L")])[0]
    assert row(ctx, first).status == "autoverified"
    assert row(ctx, second).status == "pending" and "delta check" in row(ctx, second).status_reason
    found = evaluation(ctx, second)
    assert found.delta_previous_id == first and found.delta_change == pytest.approx(1.5) and found.delta_ok is False
    # older than the window: no comparison
    with ctx.db.write() as session:
        session.connection().execute(update(Result).where(Result.id.in_([first, second]))  # type: ignore[attr-defined]
                                     .values(received_at=datetime.now(UTC) - timedelta(hours=100)))
    order(ctx, "D3", ["K"], national_id=nid)
    third = ingest(ctx, "D3", [Obs("K", "4.2", "mmol/L")])[0]
    assert row(ctx, third).status == "autoverified" and evaluation(ctx, third).delta_previous_id is None


def test_plausibility_limits(ctx: LisContext, wf: WorkflowService) -> None:
    enable_av(ctx, "GLU", None, None)
    with ctx.db.write() as session:
        test = session.get(TestDefinition, "GLU")
        assert test is not None
        test.validity_low, test.validity_high = 0.5, 60.0
    order(ctx, "P1", ["GLU"])
    result_id = ingest(ctx, "P1", [Obs("GLU", "80", "mmol/L")])[0]
    result = row(ctx, result_id)
    assert result.status == "pending" and "plausibility" in result.status_reason
    assert evaluation(ctx, result_id).plausible is False


def test_rerun_links_to_the_original(ctx: LisContext, wf: WorkflowService) -> None:
    enable_av(ctx, "GLU", 3.0, 10.0)
    order(ctx, "RR", ["GLU"])
    original = ingest(ctx, "RR", [Obs("GLU", "15.0", "mmol/L")])[0]
    wf.act(original, "rerun", row(ctx, original).version, actor="tech", role="technician", reason="check")
    rerun = ctx.ingest.ingest("xn-1", __import__("tests.lis.workflow.helpers", fromlist=["astm"]).astm(
        "RR", [Obs("GLU", "5.1", "mmol/L")], stamp="20261126093000")).result_ids[0]
    again = row(ctx, rerun)
    assert again.rerun_of_id == original and again.status == "pending"  # a person compares the two
    assert f"rerun of result {original}" in again.status_reason
    wf.act(rerun, "validate", again.version, actor="tech", role="technician")
    assert row(ctx, original).status == "rejected"
    assert row(ctx, original).status_reason == f"replaced by rerun result {rerun}"


def test_reflex_rule_adds_ft4_when_tsh_is_abnormal(ctx: LisContext, wf: WorkflowService) -> None:
    with ctx.db.write() as session:
        policies.add_reflex_rule(session, "boss", test_code="TSH", condition="outside_range", add_test="FT4")
    abnormal = order(ctx, "T1", ["TSH"])
    normal = order(ctx, "T2", ["TSH"])
    ingest(ctx, "T1", [Obs("TSH", "8.5", "m[IU]/L")])
    ingest(ctx, "T2", [Obs("TSH", "1.5", "m[IU]/L")])
    ingest(ctx, "T1", [Obs("TSH", "8.6", "m[IU]/L")])  # fires again: FT4 is not added twice
    with ctx.db.read() as session:
        def tests_of(order_id: int) -> list[str]:
            return sorted(t.test_code for t in session.exec(select(OrderTest).where(OrderTest.order_id == order_id)))
        assert tests_of(abnormal) == ["FT4", "TSH"] and tests_of(normal) == ["TSH"]


def test_calculated_egfr_and_ldl(ctx: LisContext, wf: WorkflowService) -> None:
    order(ctx, "G1", ["RENAL"], sex="F", birth=date(1976, 11, 26))
    ingest(ctx, "G1", [Obs("UREA", "5.0", "mmol/L")])
    assert "EGFR" not in by_test(ctx, "G1")  # creatinine not there yet
    crea = ingest(ctx, "G1", [Obs("CREA", "88.42", "umol/L")])[0]
    egfr = by_test(ctx, "G1")["EGFR"]
    assert (egfr.value, egfr.instrument, egfr.instrument_test_code) == ("69", "calculated", "CKD-EPI-2021")  # 68.6
    assert egfr.status == "pending" and egfr.lis_flags == "L"  # evaluated like any result (range >= 90)
    order(ctx, "L1", ["LIPID"])
    ingest(ctx, "L1", [Obs("CHOL", "5.20", "mmol/L"), Obs("HDL", "1.30", "mmol/L"), Obs("TG", "1.10", "mmol/L")])
    ldl = by_test(ctx, "L1")["LDL"]
    assert ldl.value == "3.40" and ldl.value_numeric == pytest.approx(3.4)
    order(ctx, "L2", ["LIPID"])
    ingest(ctx, "L2", [Obs("CHOL", "7.0", "mmol/L"), Obs("HDL", "1.0", "mmol/L"), Obs("TG", "5.0", "mmol/L")])
    assert "LDL" not in by_test(ctx, "L2")  # TG >= 4.5: Friedewald does not apply, LDL must be measured
    order(ctx, "L3", ["LIPID"])
    ingest(ctx, "L3", [Obs("LDL", "3.1", "mmol/L"), Obs("CHOL", "5.2", "mmol/L"), Obs("HDL", "1.3", "mmol/L"),
                       Obs("TG", "1.1", "mmol/L")])
    assert by_test(ctx, "L3")["LDL"].instrument == "xn-1"  # measured: not calculated
    with ctx.db.read() as session:
        inputs = session.exec(select(CalculatedInput).where(CalculatedInput.result_id == egfr.id)).all()
        assert [(i.input_result_id, i.role) for i in inputs] == [(crea, "CREA")]
        assert len(session.exec(select(CalculatedInput).where(CalculatedInput.result_id == ldl.id)).all()) == 3


def test_qc_and_unmatched_results_are_left_alone(ctx: LisContext, wf: WorkflowService) -> None:
    from tests.lis.astm_fixtures import astm_message

    ctx.ingest.ingest("xn-1", astm_message("QC-L1", [("GLU", "5.5", "mmol/L")], qc=True, lot="L1"))
    ctx.ingest.ingest("xn-1", astm_message("NOPE", [("GLU", "5.5", "mmol/L")]))
    with ctx.db.read() as session:
        states = sorted(r.status for r in session.exec(select(Result)).all())
    assert states == ["received", "unmatched"]
