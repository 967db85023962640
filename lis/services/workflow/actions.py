"""Human actions on results: the state machine of ARCHITECTURE.md principle 6.

``received → autoverified | pending → technically_validated → released``, plus ``rerun_requested``,
``rejected`` (reason required) and ``amended`` (a new row: revision + 1, ``supersedes_id``, result status
``C``; the released row is never edited in place). Each action is one transaction: the state change, the
audit event and (for a release) the release hooks commit together or not at all.

Optimistic locking: the caller sends the ``version`` it saw; the change is written with
``UPDATE ... WHERE id = ? AND version = ?`` so of two people acting at once exactly one wins and the other
gets :class:`VersionConflict` ("changed by X at T").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, col, select

from lis.models import Result, ResultStatus, Specimen, TestDefinition
from lis.permissions import allowed
from lis.services import audit
from lis.services.values import numeric_or_none, parse_value
from lis.services.workflow.critical import notified_ids
from lis.services.workflow.errors import (
    ActionNotPermitted,
    InvalidDefinition,
    NotFound,
    TransitionRefused,
    VersionConflict,
)
from lis.services.workflow.evaluation import Evaluator
from lis.services.workflow.policies import PolicySnapshot, PolicySpec, load_policies, section_policy
from lis.services.workflow.release import turnaround_seconds

S = ResultStatus
ACTIONS = ("validate", "release", "rerun", "reject", "amend")
PERMISSION = {"validate": "results:validate", "release": "results:release", "rerun": "results:validate",
              "reject": "results:validate", "amend": "results:amend"}
FROM_STATES: dict[str, tuple[str, ...]] = {
    "validate": (S.PENDING, S.AUTOVERIFIED, S.RERUN_REQUESTED),
    "release": (S.TECHNICALLY_VALIDATED, S.AUTOVERIFIED, S.PENDING),
    "rerun": (S.PENDING, S.AUTOVERIFIED, S.TECHNICALLY_VALIDATED),
    "reject": (S.RECEIVED, S.PENDING, S.AUTOVERIFIED, S.TECHNICALLY_VALIDATED, S.RERUN_REQUESTED),
    "amend": (S.RELEASED,),
}
BATCH_ACTIONS = ("validate", "release")
_R = Result.__table__  # type: ignore[attr-defined]


def check_permission(action: str, role: str) -> None:
    if action not in ACTIONS:
        raise InvalidDefinition("action", f"must be one of {', '.join(ACTIONS)}, not {action!r}")
    if not allowed(role, PERMISSION[action]):
        raise ActionNotPermitted(f"role {role} may not {action} results")


def state_refusal(result: Result, action: str) -> str | None:
    """Why ``action`` is not possible in the result's state, or None when it is."""
    if result.status in FROM_STATES[action]:
        return None
    rid, status = result.id, result.status
    if status == S.RELEASED:
        return f"result {rid} is released: released results are never changed; amend it instead"
    if status == S.AMENDED:
        return f"result {rid} was amended: act on its newest revision instead"
    if status == S.REJECTED:
        return f"result {rid} is rejected: nothing more can be done with it"
    if status == S.UNMATCHED:
        return f"result {rid} is unmatched: match it to a specimen and test first"
    if status == S.RECEIVED:
        return f"result {rid} is not evaluated yet: wait a moment and reload"
    if status == S.RERUN_REQUESTED:
        return f"result {rid} waits for its rerun: validate or reject it, or act on the rerun result"
    if action == "amend":
        return f"result {rid} is {status}: only released results are amended (reject or rerun it instead)"
    return f"result {rid} is {status}: it cannot be {'validated' if action == 'validate' else action + 'ed'}"


def conflict_message(result: Result, sent: int) -> str:
    who = result.updated_by or "the system"
    when = result.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC") if result.updated_at else "an unknown time"
    return (f"result {result.id} was changed by {who} at {when} (it is now {result.status}, version "
            f"{result.version}; you sent version {sent}): reload it and decide again")


def release_refusal(result: Result, policy: PolicySpec, actor: str, held: str | None, notified: bool) -> str | None:
    """Why a validator may not release this result now (two-level rule, QC hold, critical notification)."""
    if result.status == S.PENDING and policy.two_level:
        return (f"result {result.id} needs technical validation first: section {policy.section or '-'} uses "
                "two-level validation")
    if (result.status == S.TECHNICALLY_VALIDATED and result.validated_by == actor and not policy.self_validation):
        return (f"you validated result {result.id} technically; another validator must release it "
                f"(self-validation is not allowed in section {policy.section or '-'})")
    if held:
        return f"result {result.id} is held by QC ({held}): release it after QC is accepted"
    if result.critical and not notified:
        return (f"result {result.id} is a critical value ({result.lis_flags}) and no notification with read-back "
                "is recorded: notify the clinician and record it first")
    return None


@dataclass
class ActionOutcome:
    result: Result  # the result's new state (for an amendment: the new revision)
    released: list[Result] = field(default_factory=list)
    correction: bool = False


def _guarded_update(session: Session, result: Result, sent_version: int, values: dict[str, Any]) -> None:
    """``UPDATE result SET ..., version = version + 1 WHERE id = ? AND version = ?`` — the optimistic lock."""
    done = session.connection().execute(
        update(_R).where(_R.c.id == result.id, _R.c.version == sent_version)
        .values(**values, version=_R.c.version + 1)
    )
    if done.rowcount != 1:
        session.expire(result)
        current = session.get(Result, result.id)
        assert current is not None
        raise VersionConflict(conflict_message(current, sent_version))
    session.expire(result)


def _specimen_received_at(session: Session, result: Result) -> datetime | None:
    if result.specimen_id is None:
        return None
    specimen = session.get(Specimen, result.specimen_id)
    return specimen.received_at if specimen is not None else None


def _release_values(session: Session, result: Result, actor: str, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": S.RELEASED, "released_by": actor, "released_at": now, "status_reason": "",
        "turnaround_seconds": turnaround_seconds(now, _specimen_received_at(session, result), result.received_at),
        "updated_by": actor, "updated_at": now,
    }
    if result.status == S.PENDING:  # single-level section: the releaser validates too
        values.update(validated_by=actor, validated_at=now)
    return values


def _close_rerun_original(session: Session, result: Result, actor: str, now: datetime) -> None:
    """A released or validated rerun replaces its original, which leaves the queue as rejected."""
    if result.rerun_of_id is None:
        return
    session.connection().execute(
        update(_R).where(_R.c.id == result.rerun_of_id, _R.c.status == S.RERUN_REQUESTED)
        .values(status=S.REJECTED, status_reason=f"replaced by rerun result {result.id}", updated_by=actor,
                updated_at=now, version=_R.c.version + 1)
    )


def perform(session: Session, evaluator: Evaluator, *, result_id: int, action: str, version: int, actor: str,
            role: str, reason: str = "", value: str | None = None, now: datetime) -> ActionOutcome:
    """Apply one action in the caller's transaction (the service commits, runs hooks, publishes)."""
    check_permission(action, role)
    result = session.get(Result, result_id)
    if result is None or result.is_qc:
        raise NotFound(f"result {result_id} not found")
    if result.version != version:
        raise VersionConflict(conflict_message(result, version))
    refusal = state_refusal(result, action)
    if refusal:
        raise TransitionRefused(refusal)
    reason = (reason or "").strip()
    before = {"status": result.status, "version": result.version}
    outcome: ActionOutcome
    if action == "validate":
        _guarded_update(session, result, version, {
            "status": S.TECHNICALLY_VALIDATED, "validated_by": actor, "validated_at": now, "updated_by": actor,
            "updated_at": now, "status_reason": reason})
        _close_rerun_original(session, result, actor, now)
        outcome = ActionOutcome(result)
    elif action == "release":
        policy = section_policy(session, _section(session, result))
        held = evaluator.held_for(session, [result]).get(result_id)
        notified = result_id in notified_ids(session, [result_id]) if result.critical else True
        refusal = release_refusal(result, policy, actor, held, notified)
        if refusal:
            raise TransitionRefused(refusal)
        _guarded_update(session, result, version, _release_values(session, result, actor, now))
        _close_rerun_original(session, result, actor, now)
        outcome = ActionOutcome(result, [result], correction=result.revision > 0)
    elif action == "rerun":
        _guarded_update(session, result, version, {
            "status": S.RERUN_REQUESTED, "status_reason": reason or "rerun requested", "updated_by": actor,
            "updated_at": now})
        outcome = ActionOutcome(result)
    elif action == "reject":
        if not reason:
            raise InvalidDefinition("reason", "a reason is required to reject a result")
        _guarded_update(session, result, version, {
            "status": S.REJECTED, "status_reason": reason, "updated_by": actor, "updated_at": now})
        outcome = ActionOutcome(result)
    else:
        outcome = _amend(session, evaluator, result, version, actor, reason, value, now)
    session.refresh(outcome.result)
    audit.record(session, actor, f"result.{action}", "result", result_id, before=before,
                 after={"status": outcome.result.status, "version": outcome.result.version,
                        "result_id": outcome.result.id}, reason=reason)
    return outcome


def _section(session: Session, result: Result) -> str:
    test = session.get(TestDefinition, result.test_code) if result.test_code else None
    return test.section if test is not None else ""


def _amend(session: Session, evaluator: Evaluator, old: Result, version: int, actor: str, reason: str,
           value: str | None, now: datetime) -> ActionOutcome:
    """Correct a released result: a new revision with the new value; the old row is kept, marked ``amended``."""
    if not reason:
        raise InvalidDefinition("reason", "a reason is required to amend a released result")
    new_value = (value or "").strip()
    if not new_value:
        raise InvalidDefinition("value", "give the corrected value")
    policies = load_policies(session)
    test = policies.tests.get(old.test_code or "")
    if test is not None and test.numeric and parse_value(new_value).number is None:
        raise InvalidDefinition("value", f"{new_value!r} is not a number ({old.test_code} is a numeric test)")
    if new_value == old.value:
        raise InvalidDefinition("value", f"the corrected value is the released value {old.value!r}")
    old_id = old.id
    _guarded_update(session, old, version, {
        "status": S.AMENDED, "status_reason": f"amended: {reason}", "updated_by": actor, "updated_at": now})
    session.refresh(old)
    row = {c.name: getattr(old, c.name) for c in _R.columns if c.name != "id"}
    row.update(
        revision=old.revision + 1, version=1, value=new_value, value_numeric=numeric_or_none(new_value),
        abnormal_flags="", result_status="C", status=S.RECEIVED, supersedes_id=old_id, rerun_of_id=None,
        comment="", status_reason="", lis_flags="", critical=False, validated_by=actor, validated_at=now,
        released_by="", released_at=None, turnaround_seconds=None, updated_by=actor, updated_at=now,
    )
    new_id = session.connection().execute(insert(_R).values(**row).returning(_R.c.id)).scalar_one()
    evaluated = evaluator.apply(session, [new_id], policies, now, set_status=False).evaluated
    facts = evaluated[0].facts if evaluated else None
    new = session.get(Result, new_id)
    assert new is not None
    session.refresh(new)
    held = facts.held_reason if facts else None
    values: dict[str, Any] = {"updated_by": actor, "updated_at": now, "validated_by": actor, "validated_at": now}
    if held or (facts is not None and facts.critical):
        values.update(status=S.TECHNICALLY_VALIDATED, status_reason=(
            f"amendment of result {old_id}: " + (f"held by QC ({held})" if held else
                                                  "critical value: record the notification, then release")))
        released: list[Result] = []
    else:
        values.update(status=S.RELEASED, released_by=actor, released_at=now,
                      status_reason=f"amendment of result {old_id}: {reason}"[:2000],
                      turnaround_seconds=old.turnaround_seconds)
        released = [new]
    _guarded_update(session, new, new.version, values)
    session.refresh(new)
    return ActionOutcome(new, released, correction=bool(released))


# -- batch -------------------------------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    done: list[Result] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    released: list[Result] = field(default_factory=list)


def perform_batch(session: Session, evaluator: Evaluator, *, action: str, result_ids: Sequence[int],
                  versions: dict[int, int] | None, actor: str, role: str, confirm_critical: bool = False,
                  confirm_held: bool = False, now: datetime) -> BatchOutcome:
    """Validate or release many results in one transaction (a specimen, a filtered worklist).

    Skipped, with the reason: results in the wrong state or changed since read (``versions``), held by QC
    (validation only with ``confirm_held``; release never), critical values (only with ``confirm_critical``,
    and a release still needs the recorded notification), and the two-level / self-validation rule.
    """
    if action not in BATCH_ACTIONS:
        raise InvalidDefinition("action", f"batch actions are {', '.join(BATCH_ACTIONS)}, not {action!r}")
    check_permission(action, role)
    ids = sorted(set(result_ids))
    out = BatchOutcome()
    if not ids:
        return out
    results: dict[int, Result] = {}
    for start in range(0, len(ids), 1000):
        part = ids[start:start + 1000]
        for r in session.exec(select(Result).where(col(Result.id).in_(part)).order_by(col(Result.id))
                              .with_for_update()).all():
            results[r.id or 0] = r
    policies: PolicySnapshot = load_policies(session)
    live = [r for r in results.values() if not r.is_qc]
    held = evaluator.held_for(session, live)
    notified = notified_ids(session, [r.id or 0 for r in live if r.critical])
    params: list[dict[str, Any]] = []
    specimen_received = _specimen_receptions(session, live) if action == "release" else {}
    for rid in ids:
        r = results.get(rid)
        if r is None or r.is_qc:
            out.skipped.append((rid, f"result {rid} not found"))
            continue
        if versions and rid in versions and versions[rid] != r.version:
            out.skipped.append((rid, conflict_message(r, versions[rid])))
            continue
        refusal = state_refusal(r, action)
        if refusal is None and action == "validate":
            if r.critical and not confirm_critical:
                refusal = f"result {rid} is a critical value ({r.lis_flags}): confirm to validate it in a batch"
            elif rid in held and not confirm_held:
                refusal = f"result {rid} is held by QC ({held[rid]}): confirm to validate it anyway"
        if refusal is None and action == "release":
            if r.critical and not confirm_critical:
                refusal = f"result {rid} is a critical value ({r.lis_flags}): confirm to release it in a batch"
            else:
                refusal = release_refusal(r, policies.policy_for_test(r.test_code), actor, held.get(rid),
                                          rid in notified or not r.critical)
        if refusal:
            out.skipped.append((rid, refusal))
            continue
        values: dict[str, Any] = {"b_id": rid, "b_version": r.version, "updated_by": actor, "updated_at": now,
                                  "status_reason": ""}
        if action == "validate":
            values.update(status=S.TECHNICALLY_VALIDATED, validated_by=actor, validated_at=now)
        else:
            values.update(status=S.RELEASED, released_by=actor, released_at=now,
                          turnaround_seconds=turnaround_seconds(now, specimen_received.get(r.specimen_id or 0),
                                                                r.received_at),
                          validated_by=actor if r.status == S.PENDING else r.validated_by,
                          validated_at=now if r.status == S.PENDING else r.validated_at)
        params.append(values)
    if params:
        _bulk_update(session, params)
        done_ids = [p["b_id"] for p in params]
        done: list[Result] = []
        for start in range(0, len(done_ids), 1000):  # reload the new state in one query per 1000 rows
            done += session.exec(select(Result).where(col(Result.id).in_(done_ids[start:start + 1000]))
                                 .order_by(col(Result.id)).execution_options(populate_existing=True)).all()
        for r in done:
            if r.rerun_of_id is not None:
                _close_rerun_original(session, r, actor, now)
        out.done = done
        if action == "release":
            out.released = done
        audit.record(session, actor, f"result.batch_{action}", "result", ",".join(str(p["b_id"]) for p in params)[:64],
                     after={"result_ids": [p["b_id"] for p in params], "status": params[0]["status"]},
                     skipped=[{"id": i, "reason": why} for i, why in out.skipped])
    return out


def _specimen_receptions(session: Session, results: Sequence[Result]) -> dict[int, datetime | None]:
    ids = sorted({r.specimen_id for r in results if r.specimen_id is not None})
    if not ids:
        return {}
    return dict(session.connection().execute(
        select(Specimen.id, Specimen.received_at).where(col(Specimen.id).in_(ids))).all())  # type: ignore[arg-type]


def _bulk_update(session: Session, params: list[dict[str, Any]]) -> None:
    """One executemany ``UPDATE ... WHERE id = ? AND version = ?`` for the whole batch."""
    columns = [k for k in params[0] if not k.startswith("b_")]
    stmt = (update(_R).where(_R.c.id == bindparam("b_id"), _R.c.version == bindparam("b_version"))
            .values(**{c: bindparam("v_" + c) for c in columns}, version=_R.c.version + 1))
    renamed = [{(k if k.startswith("b_") else "v_" + k): v for k, v in p.items()} for p in params]
    done = session.connection().execute(stmt, renamed)
    if done.rowcount not in (-1, len(params)):  # rows are locked above: a mismatch is a bug, never a race
        raise TransitionRefused("some results changed during the batch: reload the list and try again")
