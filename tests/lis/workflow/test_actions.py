"""The result state machine through the service (SQLite and PostgreSQL): two-level validation,
self-validation, QC holds and critical values blocking release, reject, rerun, amend, batches, hooks, and
optimistic locking with two real connections in two threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from lis.context import LisContext
from lis.events import ResultReleased
from lis.models import AuditEvent, QcRuleSet, Result
from lis.services.workflow import (
    ActionNotPermitted,
    InvalidDefinition,
    TransitionRefused,
    VersionConflict,
    WorkflowService,
    actions,
    policies,
)
from tests.lis.workflow.helpers import Obs, by_test, ingest, order, row

TECH = {"actor": "tech", "role": "technician"}
DOC = {"actor": "doc", "role": "validator"}
DOC2 = {"actor": "doc2", "role": "validator"}


def pending(ctx: LisContext, barcode: str, obs: Obs) -> int:
    order(ctx, barcode, [obs.code])
    result_id = ingest(ctx, barcode, [obs])[0]
    assert row(ctx, result_id).status == "pending"
    return result_id


def act(wf: WorkflowService, ctx: LisContext, result_id: int, action: str, who: dict[str, str],
        **kw: Any) -> Result:
    return wf.act(result_id, action, row(ctx, result_id).version, **who, **kw).result


def test_two_level_validation_then_release(ctx: LisContext, wf: WorkflowService) -> None:
    events: list[ResultReleased] = []
    ctx.bus.subscribe(ResultReleased, events.append)
    hooked: list[tuple[list[int], bool]] = []
    wf.add_release_hook(lambda session, results, correction: hooked.append(([r.id for r in results], correction)))
    rid = pending(ctx, "V1", Obs("GLU", "5.0", "mmol/L"))
    with pytest.raises(TransitionRefused, match="needs technical validation first"):
        act(wf, ctx, rid, "release", DOC)
    with pytest.raises(ActionNotPermitted, match="technician may not release"):
        act(wf, ctx, rid, "release", TECH)
    validated = act(wf, ctx, rid, "validate", TECH)
    assert (validated.status, validated.validated_by, validated.version) == ("technically_validated", "tech", 3)
    with pytest.raises(ActionNotPermitted):
        act(wf, ctx, rid, "release", TECH)
    released = act(wf, ctx, rid, "release", DOC)
    assert (released.status, released.released_by, released.version) == ("released", "doc", 4)
    assert released.turnaround_seconds is not None
    assert hooked == [([rid], False)] and [e.result_ids for e in events] == [(rid,)] and not events[0].correction
    with pytest.raises(TransitionRefused, match="released results are never changed; amend it instead"):
        act(wf, ctx, rid, "reject", DOC, reason="late")
    with ctx.db.read() as session:
        actions_logged = [e.action for e in session.exec(select(AuditEvent).where(AuditEvent.entity_id == str(rid),
                                                                           AuditEvent.entity_type == "result"))]
    assert actions_logged == ["result.validate", "result.release"]


def test_self_validation_is_refused_unless_the_section_allows_it(ctx: LisContext, wf: WorkflowService) -> None:
    rid = pending(ctx, "V2", Obs("GLU", "5.0", "mmol/L"))
    act(wf, ctx, rid, "validate", DOC)
    with pytest.raises(TransitionRefused, match="another validator must release it"):
        act(wf, ctx, rid, "release", DOC)
    with ctx.db.write() as session:
        policies.put_section_policy(session, "chemistry", "boss", self_validation=True)
    assert act(wf, ctx, rid, "release", DOC).status == "released"


def test_single_level_section_releases_from_pending(ctx: LisContext, wf: WorkflowService) -> None:
    with ctx.db.write() as session:
        policies.put_section_policy(session, "chemistry", "boss", two_level=False)
    rid = pending(ctx, "V3", Obs("GLU", "5.0", "mmol/L"))
    released = act(wf, ctx, rid, "release", DOC)
    assert (released.status, released.validated_by, released.released_by) == ("released", "doc", "doc")


def test_release_of_a_held_result_is_refused_with_the_reason(ctx: LisContext, wf: WorkflowService) -> None:
    rid = pending(ctx, "V4", Obs("GLU", "5.0", "mmol/L"))
    act(wf, ctx, rid, "validate", TECH)
    with ctx.db.write() as session:
        session.add(QcRuleSet(instrument="xn-1", test_code="GLU", rejection_rules="1_3s"))
    with pytest.raises(TransitionRefused, match=r"held by QC \(no_qc_in_interval\)"):
        act(wf, ctx, rid, "release", DOC)
    assert row(ctx, rid).status == "technically_validated"


def test_critical_value_needs_a_notification_with_read_back(ctx: LisContext, wf: WorkflowService) -> None:
    rid = pending(ctx, "V5", Obs("K", "7.0", "mmol/L"))
    assert [p.result_id for p in wf.pending_criticals()] == [rid]
    act(wf, ctx, rid, "validate", TECH)
    with pytest.raises(TransitionRefused, match=r"critical value .* no notification with read-back"):
        act(wf, ctx, rid, "release", DOC)
    wf.notify_critical(rid, actor="tech", notified="Dr Lan (ward 3)", method="phone", read_back=False)
    with pytest.raises(TransitionRefused, match="critical value"):
        act(wf, ctx, rid, "release", DOC)
    assert wf.pending_criticals()[0].attempts == 1
    with pytest.raises(InvalidDefinition, match=r"^method: must be one of"):
        wf.notify_critical(rid, actor="tech", notified="Dr Lan", method="pigeon", read_back=True)
    wf.notify_critical(rid, actor="tech", notified="Dr Lan (ward 3)", method="phone", read_back=True)
    assert wf.pending_criticals() == []
    assert act(wf, ctx, rid, "release", DOC).status == "released"
    normal = pending(ctx, "V6", Obs("GLU", "5.0", "mmol/L"))
    with pytest.raises(TransitionRefused, match="not a critical value"):
        wf.notify_critical(normal, actor="tech", notified="Dr Lan", method="phone", read_back=True)


def test_reject_needs_a_reason_and_ends_the_result(ctx: LisContext, wf: WorkflowService) -> None:
    rid = pending(ctx, "V7", Obs("GLU", "5.0", "mmol/L"))
    with pytest.raises(InvalidDefinition, match=r"^reason: a reason is required"):
        act(wf, ctx, rid, "reject", TECH)
    assert row(ctx, rid).status == "pending"
    rejected = act(wf, ctx, rid, "reject", TECH, reason="haemolysed specimen")
    assert (rejected.status, rejected.status_reason) == ("rejected", "haemolysed specimen")
    for action in ("validate", "release", "rerun", "amend"):
        with pytest.raises((TransitionRefused, ActionNotPermitted)):
            act(wf, ctx, rid, action, DOC, reason="x", value="1")


def test_amend_creates_a_new_revision_and_a_correction(ctx: LisContext, wf: WorkflowService) -> None:
    events: list[ResultReleased] = []
    ctx.bus.subscribe(ResultReleased, events.append)
    corrections: list[bool] = []
    wf.add_release_hook(lambda session, results, correction: corrections.append(correction))
    rid = pending(ctx, "V8", Obs("GLU", "5.0", "mmol/L"))
    with pytest.raises(TransitionRefused, match="only released results are amended"):
        act(wf, ctx, rid, "amend", DOC, reason="typo", value="6.1")
    act(wf, ctx, rid, "validate", TECH)
    act(wf, ctx, rid, "release", DOC)
    with pytest.raises(ActionNotPermitted):
        act(wf, ctx, rid, "amend", TECH, reason="typo", value="6.1")
    with pytest.raises(InvalidDefinition, match=r"^value: 'abc' is not a number"):
        act(wf, ctx, rid, "amend", DOC, reason="typo", value="abc")
    new = act(wf, ctx, rid, "amend", DOC, reason="transcription error", value="6,9")
    old = row(ctx, rid)
    assert (old.status, old.value, old.status_reason) == ("amended", "5.0", "amended: transcription error")
    assert (new.revision, new.supersedes_id, new.result_status, new.status, new.value) == (1, rid, "C", "released",
                                                                                           "6,9")
    assert new.lis_flags == "H" and new.value_numeric == pytest.approx(6.9)
    assert corrections == [False, True] and events[-1].correction and events[-1].result_ids == (new.id,)
    critical = act(wf, ctx, new.id or 0, "amend", DOC, reason="wrong again", value="30")
    assert critical.status == "technically_validated" and "record the notification" in critical.status_reason
    assert critical.revision == 2 and row(ctx, new.id or 0).status == "amended"


def test_stale_version_is_refused_with_who_and_when(ctx: LisContext, wf: WorkflowService) -> None:
    rid = pending(ctx, "V9", Obs("GLU", "5.0", "mmol/L"))
    seen = row(ctx, rid).version
    wf.act(rid, "validate", seen, **TECH)
    with pytest.raises(VersionConflict, match=r"changed by tech at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"):
        wf.act(rid, "reject", seen, **DOC, reason="x")


def test_two_validators_at_once_exactly_one_wins(ctx: LisContext, wf: WorkflowService,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads, two database connections, the same version: one validation commits, one conflicts."""
    rid = pending(ctx, "VC", Obs("GLU", "5.0", "mmol/L"))
    version = row(ctx, rid).version
    if ctx.db.dialect == "postgresql":
        # both transactions read the row and reach the guarded UPDATE before either commits
        barrier = threading.Barrier(2, timeout=20)
        original: Callable[..., None] = actions._guarded_update

        def in_step(*args: Any, **kwargs: Any) -> None:
            barrier.wait()
            original(*args, **kwargs)

        monkeypatch.setattr(actions, "_guarded_update", in_step)
    outcomes: list[tuple[str, str]] = []

    def worker(name: str) -> None:
        try:
            wf.act(rid, "validate", version, actor=name, role="technician")
            outcomes.append(("won", name))
        except VersionConflict as exc:
            outcomes.append(("conflict", str(exc)))

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(kind for kind, _ in outcomes) == ["conflict", "won"]
    winner = next(who for kind, who in outcomes if kind == "won")
    loser_message = next(msg for kind, msg in outcomes if kind == "conflict")
    assert f"changed by {winner} at" in loser_message
    final = row(ctx, rid)
    assert (final.validated_by, final.version) == (winner, version + 1)


def test_batch_validation_skips_critical_and_held_unless_confirmed(ctx: LisContext, wf: WorkflowService) -> None:
    order(ctx, "B1", ["GLU", "K", "NA", "CL"])
    ingest(ctx, "B1", [Obs("GLU", "5.0", "mmol/L"), Obs("K", "7.0", "mmol/L"), Obs("NA", "140", "mmol/L"),
                       Obs("CL", "100", "mmol/L")])
    with ctx.db.write() as session:
        session.add(QcRuleSet(instrument="xn-1", test_code="NA", rejection_rules="1_3s"))
    rows = by_test(ctx, "B1")
    ids = [r.id or 0 for r in rows.values()]
    first = wf.batch("validate", ids, **TECH)
    assert sorted(r.test_code or "" for r in first.done) == ["CL", "GLU"]
    reasons = {rid: why for rid, why in first.skipped}
    assert "critical value (HH): confirm" in reasons[rows["K"].id or 0]
    assert "held by QC" in reasons[rows["NA"].id or 0]
    second = wf.batch("validate", ids, **TECH, confirm_critical=True, confirm_held=True)
    assert sorted(r.test_code or "" for r in second.done) == ["K", "NA"]
    release = wf.batch("release", ids, **DOC, confirm_critical=True)
    assert sorted(r.test_code or "" for r in release.done) == ["CL", "GLU"]  # NA held, K not notified
    why = dict(release.skipped)
    assert "held by QC" in why[rows["NA"].id or 0] and "no notification" in why[rows["K"].id or 0]
    stale = wf.batch("release", [rows["K"].id or 0], **DOC, versions={rows["K"].id or 0: 1})
    assert "changed by tech" in stale.skipped[0][1]
    with pytest.raises(InvalidDefinition, match=r"^action: batch actions are validate, release"):
        wf.batch("amend", ids, **DOC)


def test_failing_release_hook_releases_nothing(ctx: LisContext, wf: WorkflowService) -> None:
    events: list[ResultReleased] = []
    ctx.bus.subscribe(ResultReleased, events.append)
    rid = pending(ctx, "HK", Obs("GLU", "5.0", "mmol/L"))
    act(wf, ctx, rid, "validate", TECH)

    def broken(session: Session, results: list[Result], correction: bool) -> None:
        raise RuntimeError("EMR outbox unavailable")

    wf.add_release_hook(broken)
    with pytest.raises(RuntimeError):
        act(wf, ctx, rid, "release", DOC)
    assert row(ctx, rid).status == "technically_validated" and events == []
