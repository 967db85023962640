"""Reflex testing: a result meeting a reflex rule adds a test to its order (e.g. TSH outside range → FT4).

Rules are data (:class:`lis.models.ReflexRule`); a test already on the order (not cancelled) is never added
twice. Each addition is audited with the rule and the result that fired it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from lis.models import OrderTest
from lis.services import audit
from lis.services.workflow.evaluation import Evaluated
from lis.services.workflow.policies import PolicySnapshot

REFLEX_ACTOR = "reflex"


@dataclass(frozen=True, slots=True)
class ReflexAddition:
    order_id: int
    test_code: str
    trigger_result_id: int
    rule_id: int


def apply_reflex(session: Session, evaluated: Sequence[Evaluated], policies: PolicySnapshot) -> list[ReflexAddition]:
    """Add the reflex tests fired by these evaluated results to their orders (in the caller's transaction)."""
    fired: list[tuple[Evaluated, int, str]] = []
    for e in evaluated:
        if e.order_id is None:
            continue
        for rule in policies.reflex.get(e.test_code, ()):
            if rule.fires(e.facts.lis_flag, e.facts.critical, e.facts.number):
                fired.append((e, rule.id, rule.add_test))
    if not fired:
        return []
    orders = sorted({e.order_id for e, _, _ in fired if e.order_id is not None})
    present = {(o.order_id, o.test_code) for o in session.connection().execute(
        select(OrderTest.order_id, OrderTest.test_code)
        .where(OrderTest.order_id.in_(orders), OrderTest.status != "cancelled")  # type: ignore[attr-defined]
    ).all()}
    added: list[ReflexAddition] = []
    for e, rule_id, code in fired:
        assert e.order_id is not None
        if (e.order_id, code) in present:
            continue
        present.add((e.order_id, code))
        session.add(OrderTest(order_id=e.order_id, specimen_id=e.specimen_id, test_code=code))
        audit.record(session, REFLEX_ACTOR, "order.reflex_add", "order", e.order_id,
                     after={"test": code, "rule_id": rule_id, "result_id": e.result_id,
                            "trigger": f"{e.test_code} {e.facts.value} {e.facts.lis_flag}".strip()})
        added.append(ReflexAddition(e.order_id, code, e.result_id, rule_id))
    session.flush()
    return added
