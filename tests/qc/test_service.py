"""QC service end to end on SQLite and PostgreSQL: ASTM QC messages → runs → Westgard decisions → holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import col, select

from lis.context import LisContext
from lis.models import (
    AuditEvent,
    QcDecision,
    QcHold,
    QcRun,
    QcRunObservation,
    QcTarget,
    QcViolation,
)
from lis.services.audit import verify_chain
from lis.services.qc_holds import held_results, is_held
from qc import setup
from qc.service import QcRunEvaluated, QcService
from qc.stats import establish_target
from qc.wiring import install
from tests.qc.service_helpers import T0, GlucoseQc, configure_glucose, value_at


@pytest.fixture
def service(ctx: LisContext) -> Iterator[QcService]:
    yield install(ctx)


@pytest.fixture
def glu(ctx: LisContext, service: QcService) -> GlucoseQc:
    return configure_glucose(ctx, service)


def runs(ctx: LisContext) -> list[QcRun]:
    with ctx.db.read() as session:
        return list(session.exec(select(QcRun).order_by(col(QcRun.id))).all())


def violations(ctx: LisContext, run_id: int | None) -> list[QcViolation]:
    with ctx.db.read() as session:
        return list(session.exec(select(QcViolation).where(QcViolation.run_id == run_id)).all())


def members(ctx: LisContext, run_id: int | None) -> list[QcRunObservation]:
    with ctx.db.read() as session:
        return list(session.exec(select(QcRunObservation).where(QcRunObservation.run_id == run_id)).all())


def holds(ctx: LisContext) -> list[QcHold]:
    with ctx.db.read() as session:
        return list(session.exec(select(QcHold).order_by(col(QcHold.id))).all())


def actions(ctx: LisContext) -> list[str]:
    with ctx.db.read() as session:
        return [e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]


def test_two_levels_form_one_run_evaluated_when_complete(ctx: LisContext, glu: GlucoseQc) -> None:
    events: list[QcRunEvaluated] = []
    ctx.bus.subscribe(QcRunEvaluated, events.append)
    first = glu.send("QC-1", "5.1", T0)
    assert glu.run_of(first[0]).status == "open" and events == []  # waiting for level 2
    second = glu.send("QC-2", "14.8", T0 + timedelta(minutes=3))
    run = glu.run_of(second[0])
    assert run.id == glu.run_of(first[0]).id
    assert (run.status, run.decision) == ("evaluated", "accept")
    with ctx.db.read() as session:
        members = session.exec(select(QcRunObservation).where(QcRunObservation.run_id == run.id)).all()
    assert sorted(m.result_id for m in members) == sorted(first + second)
    assert {m.status for m in members} == {"evaluated"}
    assert [m.z for m in sorted(members, key=lambda m: m.result_id)] == pytest.approx([0.5, -0.4])
    assert [(e.run_id, e.decision) for e in events] == [(run.id, "accept")]


def test_window_and_repeated_level_start_new_runs(ctx: LisContext, glu: GlucoseQc) -> None:
    glu.send("QC-1", "5.0", T0)
    glu.send("QC-1", "5.1", T0 + timedelta(minutes=5))  # same level again: the first run closes with one level
    glu.send("QC-2", "15.0", T0 + timedelta(minutes=50))  # outside the 30 min window: another run
    got = runs(ctx)
    assert [(r.status, r.decision) for r in got] == [("evaluated", "accept"), ("evaluated", "accept"),
                                                     ("open", None)]
    assert glu.service.close_due_runs(now=got[2].opened_at + timedelta(minutes=29)) == []
    assert glu.service.close_due_runs(now=got[2].opened_at + timedelta(minutes=31)) == [got[2].id]
    assert runs(ctx)[2].decision == "accept"


def test_explicit_run_key_groups_manual_entries(ctx: LisContext, glu: GlucoseQc) -> None:
    rid1, run1 = glu.service.enter_manual(actor="tech", instrument="xn-1", test_code="GLU",
                                          material_id=glu.materials["QC-1"], value="5.2", run_key="M-1",
                                          observed_at=T0)
    assert run1.status == "open" and run1.run_key == "M-1"
    rid2, run2 = glu.service.enter_manual(actor="tech", instrument="xn-1", test_code="GLU",
                                          material_id=glu.materials["QC-2"], value="15.9", run_key="M-1",
                                          observed_at=T0 + timedelta(hours=2))  # outside the window: key wins
    assert (run2.id, run2.status, run2.decision) == (run1.id, "evaluated", "accept")  # z +1.0 and +1.8
    assert {rid1, rid2} == {m.result_id for m in members(ctx, run2.id)}
    assert "qc.observation.manual" in actions(ctx)


def test_warning_stores_violation_with_observations(ctx: LisContext, glu: GlucoseQc) -> None:
    run = glu.run(T0, 2.5, 0.3)
    assert run.decision == "warning"
    (v,) = violations(ctx, run.id)
    assert (v.rule, v.scope, v.severity, v.material_id) == ("1_2s", "within-run", "warning", None)
    with ctx.db.read() as session:
        level1 = session.exec(select(QcRunObservation).where(QcRunObservation.run_id == run.id,
                                                              QcRunObservation.z > 2)).one()
    assert json.loads(v.result_ids) == [level1.result_id]
    assert glu.run(T0 + timedelta(hours=1), 2, -2).decision == "accept"  # exactly at 2 SD is not beyond


def test_reject_holds_patient_results_since_last_accepted_run(ctx: LisContext, glu: GlucoseQc) -> None:
    before = glu.patient(T0 - timedelta(hours=1))
    assert glu.run(T0, 0.2, -0.1).decision == "accept"
    during = glu.patient(T0 + timedelta(hours=1))
    other_test = glu.patient(T0 + timedelta(hours=1), test="NA", value="140")
    rejected = glu.run(T0 + timedelta(hours=2), 3.5, 0.1)
    after = glu.patient(T0 + timedelta(hours=3))
    assert rejected.decision == "reject"
    assert {v.rule for v in violations(ctx, rejected.id)} == {"1_2s", "1_3s"}
    (hold,) = holds(ctx)
    assert (hold.reason, hold.state, hold.since, hold.run_id) == ("rejected_run", "open", T0, rejected.id)
    with ctx.db.read() as session:
        held = held_results(session, [before, during, other_test, after, 999_999])
        assert held == {during: "rejected_run", after: "rejected_run"}
        assert is_held(session, "xn-1", "GLU", T0 + timedelta(hours=1)) == "rejected_run"
        assert is_held(session, "xn-1", "GLU", T0 - timedelta(minutes=1)) is None
    assert "qc.hold.opened" in actions(ctx)
    glu.service.record_corrective_action(hold.id or 0, "cleaned the probe", "val")
    assert holds(ctx)[0].state == "awaiting_run"
    glu.run(T0 + timedelta(hours=4), 0, 3.5)  # rejected again before an accepted run: a new action is needed
    assert [(h.id, h.state, h.reason) for h in holds(ctx)] == [(hold.id, "open", "rejected_run")]
    assert "qc.hold.reopened" in actions(ctx)


def test_corrective_action_and_following_accepted_run_lift_the_hold(ctx: LisContext, glu: GlucoseQc) -> None:
    glu.run(T0, 0, 0)
    held_one = glu.patient(T0 + timedelta(minutes=30))
    glu.run(T0 + timedelta(hours=1), -3.2, 0)
    (hold,) = holds(ctx)
    # an accepted run before any corrective action does not lift it
    assert glu.run(T0 + timedelta(hours=2), 0.1, 0.1).decision == "accept"
    assert holds(ctx)[0].state == "open"
    glu.service.record_corrective_action(hold.id or 0, "Recalibrated GLU, new reagent pack", "val")
    assert holds(ctx)[0].state == "awaiting_run"
    with ctx.db.read() as session:
        assert held_results(session, [held_one]) == {held_one: "rejected_run"}  # still held until the run
    accepted = glu.run(T0 + timedelta(hours=3), 0.3, -0.2)
    lifted = holds(ctx)[0]
    assert (lifted.state, lifted.lifted_by, lifted.lifted_by_run_id) == ("lifted", "val", accepted.id)
    assert lifted.corrective_action == "Recalibrated GLU, new reagent pack"
    with ctx.db.read() as session:
        assert held_results(session, [held_one]) == {}
        assert verify_chain(session).ok
    trail = actions(ctx)
    assert trail.index("qc.hold.opened") < trail.index("qc.corrective_action") < trail.index("qc.hold.lifted")


def test_across_run_history_restarts_after_reject(ctx: LisContext, glu: GlucoseQc) -> None:
    assert glu.run(T0, 2.5, 0).decision == "warning"
    second = glu.run(T0 + timedelta(hours=1), 2.5, 0)  # 2_2s within material across runs
    assert second.decision == "reject"
    assert {(v.rule, v.scope) for v in violations(ctx, second.id)} >= {("2_2s", "across-runs-within-material")}
    assert glu.run(T0 + timedelta(hours=2), 2.5, 0).decision == "warning"  # history reset: no 2_2s


def test_history_is_rebuilt_from_the_tables(ctx: LisContext, glu: GlucoseQc) -> None:
    assert glu.run(T0, 0.5, 1.5).decision == "accept"
    assert glu.run(T0 + timedelta(hours=1), 1.5, 1.5).decision == "accept"
    # another process (or a restart): a fresh service without the in-memory history
    fresh = QcService(ctx.db, ctx.bus)
    glu.service.unsubscribe()  # only the fresh service listens now
    fresh.subscribe()
    glu.service = fresh
    fourth_run = glu.run(T0 + timedelta(hours=2), 1.5, 1.5)  # 4_1s across materials needs the history
    assert fourth_run.decision == "reject"
    assert "4_1s" in {v.rule for v in violations(ctx, fourth_run.id)}


def test_new_lot_starts_a_fresh_history(ctx: LisContext, glu: GlucoseQc) -> None:
    assert glu.run(T0, 2.5, 0).decision == "warning"
    with ctx.db.write() as session:
        lot = setup.create_lot(session, "boss", material_id=glu.materials["QC-1"], lot_number="L2")
        setup.create_target(session, "boss", lot_id=lot.id or 0, instrument="xn-1", test_code="GLU",
                            mean="5.0", sd="0.2")
    second = glu.run(T0 + timedelta(hours=1), 2.5, 0)
    assert second.decision == "warning"  # 2_2s would fire on the same lot
    with ctx.db.read() as session:
        lots = {m.lot_number for m in session.exec(select(QcRunObservation).where(
            QcRunObservation.run_id == second.id)).all()}
    assert lots == {"L1", "L2"}


@pytest.mark.parametrize("bad", ["----", "<0.1"])
def test_non_numeric_value_cannot_evaluate_and_holds(ctx: LisContext, glu: GlucoseQc, bad: str) -> None:
    glu.run(T0, 0, 0)
    patient = glu.patient(T0 + timedelta(minutes=40))
    ids = glu.send("QC-1", bad, T0 + timedelta(hours=1))
    ids += glu.send("QC-2", "15.1", T0 + timedelta(hours=1, minutes=1))
    run = glu.run_of(ids[0])
    assert run.decision == "cannot_evaluate" and "non-numeric" in run.reason
    with ctx.db.read() as session:
        flagged = session.exec(select(QcRunObservation).where(QcRunObservation.result_id == ids[0])).one()
        assert (flagged.status, flagged.value) == ("flagged", bad)
        assert held_results(session, [patient]) == {patient: "cannot_evaluate"}
    assert [h.reason for h in holds(ctx)] == ["cannot_evaluate"]


def test_unknown_material_and_missing_target_fail_closed(ctx: LisContext, glu: GlucoseQc) -> None:
    glu.run(T0, 0, 0)
    ids = glu.send("QC-9", "5.0", T0 + timedelta(hours=1))  # no such material
    run = glu.run_of(ids[0])
    assert run.status == "open"  # level 1 and 2 still expected in the window
    glu.service.close_due_runs(now=run.opened_at + timedelta(hours=1))
    run = glu.run_of(ids[0])
    assert run.decision == "cannot_evaluate" and "unknown control material 'QC-9'" in run.reason
    with ctx.db.write() as session:
        material = setup.create_material(session, "boss", code="QC-3", name="Level 3")
        setup.create_lot(session, "boss", material_id=material.id or 0, lot_number="X1")
    ids = glu.send("QC-3", "25.0", T0 + timedelta(hours=3))
    glu.service.close_due_runs(now=glu.run_of(ids[0]).opened_at + timedelta(hours=1))
    assert "no target for GLU on xn-1, lot X1" in glu.run_of(ids[0]).reason
    assert [(h.reason, h.state) for h in holds(ctx)] == [("cannot_evaluate", "open")]


def test_target_sd_not_positive_or_expired_lot_fails_closed(ctx: LisContext, glu: GlucoseQc) -> None:
    with ctx.db.write() as session:  # e.g. edited in the database: the API refuses SD <= 0
        target = session.get(QcTarget, glu.targets["QC-2"])
        assert target is not None
        target.sd = "0"
        session.add(target)
    run = glu.run(T0, 0, 0)
    assert run.decision == "cannot_evaluate" and "target SD must be > 0" in run.reason
    assert [h.reason for h in holds(ctx)] == ["cannot_evaluate"]
    with ctx.db.write() as session:
        setup.update_target(session, "boss", glu.targets["QC-2"], sd="0.5")
        setup.update_lot(session, "boss", glu.lots["QC-1"], expires_on=(T0 - timedelta(days=1)).date())
    run = glu.run(T0 + timedelta(hours=1), 0, 0)
    assert run.decision == "cannot_evaluate" and "lot L1 expired on" in run.reason
    assert [h.reason for h in holds(ctx)] == ["cannot_evaluate"]  # still the one open hold


def test_analyte_without_qc_configuration_is_not_held(ctx: LisContext, glu: GlucoseQc) -> None:
    patient = glu.patient(T0, test="NA", value="140")
    ids = glu.send("QC-1", "140", T0, test="NA")
    run = glu.run_of(ids[0])
    assert run.decision == "cannot_evaluate" and "not under QC" in run.reason
    assert holds(ctx) == []
    with ctx.db.read() as session:
        assert held_results(session, [patient]) == {}


def test_no_accepted_run_in_interval_holds_and_next_accepted_run_lifts(ctx: LisContext, glu: GlucoseQc) -> None:
    never = glu.patient(T0 - timedelta(hours=2))
    with ctx.db.read() as session:
        assert held_results(session, [never]) == {never: "no_qc_in_interval"}  # configured, never any QC
    glu.run(T0, 0, 0)
    covered = glu.patient(T0 + timedelta(hours=23))
    late = glu.patient(T0 + timedelta(hours=25))
    with ctx.db.read() as session:
        assert held_results(session, [never, covered, late]) == {late: "no_qc_in_interval"}
    opened = glu.service.check_intervals(now=T0 + timedelta(hours=24, minutes=1))
    assert len(opened) == 1 and glu.service.check_intervals(now=T0 + timedelta(hours=25)) == []
    (hold,) = holds(ctx)
    assert (hold.reason, hold.since) == ("no_qc_in_interval", T0 + timedelta(hours=24))
    glu.run(T0 + timedelta(hours=26), 0.2, 0.1)  # no corrective action needed for a missing QC
    assert holds(ctx)[0].state == "lifted" and holds(ctx)[0].lifted_by == "qc"
    with ctx.db.read() as session:
        assert held_results(session, [late]) == {}


def test_rule_set_interval_is_used(ctx: LisContext, service: QcService) -> None:
    glu = configure_glucose(ctx, service, rules=(["1_3s"], ["1_2s"]))
    with ctx.db.write() as session:
        setup.set_rule_set(session, "boss", instrument="xn-1", test_code="GLU", rejection_rules=["1_3s"],
                           warning_rules=[], max_interval_hours=8)
    glu.run(T0, 0, 0)
    p = glu.patient(T0 + timedelta(hours=9))
    with ctx.db.read() as session:
        assert held_results(session, [p]) == {p: "no_qc_in_interval"}
    assert glu.run(T0 + timedelta(hours=10), 2.5, 0).decision == "accept"  # 1_2s is not in the set any more


def test_lab_target_established_from_first_runs(ctx: LisContext, service: QcService) -> None:
    glu = configure_glucose(ctx, service, levels=("QC-1",))
    with ctx.db.write() as session:
        lot = setup.create_lot(session, "boss", material_id=glu.materials["QC-1"], lot_number="L9")
        target = setup.create_target(session, "boss", lot_id=lot.id or 0, instrument="xn-1", test_code="GLU",
                                     source="lab", n_establish=3)
    assert target.state == "establishing"
    values = ["5.10", "5.30", "5.20"]
    for i, v in enumerate(values):
        run = glu.run_of(glu.send("QC-1", v, T0 + timedelta(hours=i))[0])
        assert run.decision == QcDecision.ESTABLISHING
    with ctx.db.read() as session:
        established = session.get(QcTarget, target.id)
    expected = establish_target(values, 3)
    assert established is not None and established.state == "active"
    assert (established.mean, established.sd) == (str(expected.mean), str(expected.sd))
    assert "qc.target.established" in actions(ctx)
    assert glu.run(T0 + timedelta(hours=5), 0).decision in ("accept", "warning", "reject")  # evaluated now


def test_catch_up_processes_missed_observations(ctx: LisContext, glu: GlucoseQc) -> None:
    glu.service.unsubscribe()  # the service missed the events (e.g. a crash after ingest committed)
    glu.send("QC-1", value_at("QC-1", 0), T0)
    glu.send("QC-2", value_at("QC-2", 0), T0 + timedelta(minutes=1))
    assert runs(ctx) == []
    assert glu.service.catch_up() == 2
    assert [r.decision for r in runs(ctx)] == ["accept"]
    with ctx.db.read() as session:
        ids = [m.result_id for m in session.exec(select(QcRunObservation)).all()]
    assert glu.service.process(ids) == [] and glu.service.catch_up() == 0  # idempotent
    assert len(members(ctx, runs(ctx)[0].id)) == 2


def test_sigma_proposal_uses_observed_cv_after_20_values(ctx: LisContext, glu: GlucoseQc) -> None:
    zs = [0.5, -0.5] * 10  # observed SD of QC-1 about 0.103 on a mean of 5.0: CV about 2.05 %
    for i, z in enumerate(zs):
        glu.run(T0 + timedelta(hours=i), z, z)
    with ctx.db.read() as session:
        proposal = setup.propose_rule_set(session, "xn-1", "GLU")
    assert proposal.cv_source == "observed (n=20)"
    assert proposal.cv_pct == pytest.approx(2.0519567, rel=1e-4)  # the worse of the two levels (QC-1)
    assert proposal.proposal.sigma == pytest.approx((10.0 - 1.0) / proposal.cv_pct)


def test_periodic_component_catches_up_and_opens_interval_holds(ctx: LisContext, glu: GlucoseQc) -> None:
    import asyncio

    from qc.periodic import QcPeriodicCheck

    glu.service.unsubscribe()
    glu.send("QC-1", "5.0", T0)
    glu.send("QC-2", "15.0", T0 + timedelta(minutes=1))
    check = QcPeriodicCheck(glu.service, every=0.05)

    async def lifetime() -> None:
        await check.start()
        await asyncio.sleep(0.3)
        await check.stop()

    asyncio.run(lifetime())
    assert [r.decision for r in runs(ctx)] == ["accept"]  # caught up at start
    # the run is days old (T0): no accepted run within 24 h of now, so the check opened the hold
    assert [(h.reason, h.state, h.since) for h in holds(ctx)] == [("no_qc_in_interval", "open",
                                                                  T0 + timedelta(hours=24))]
