"""Release: the in-transaction release hooks (the EMR outbox registers one so its delivery rows commit with
the release), order completion, and the ``ResultReleased`` event published after the commit.

Hook contract: ``hook(session, released_results, correction) -> None`` runs inside the release transaction,
after the results are ``released`` (or, for a correction, after the new revision is released and the old
one marked ``amended``). A hook that raises rolls the whole release back: nothing is released, nothing is
queued. ``correction`` is True when the results are amended revisions (HL7 OBX-11 ``C``, FHIR ``corrected``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from lis.events import EventBus, ResultReleased
from lis.models import Order, OrderTest, Result, ResultStatus, Specimen

log = logging.getLogger(__name__)

ReleaseHook = Callable[[Session, Sequence[Result], bool], None]


def turnaround_seconds(released_at: datetime, specimen_received_at: datetime | None,
                       result_received_at: datetime) -> float:
    """Intra-laboratory TAT: specimen reception (or the result's arrival when unknown) → release."""
    start = specimen_received_at or result_received_at
    return max(0.0, (released_at - start).total_seconds())


def order_ids_of(session: Session, results: Sequence[Result]) -> list[int]:
    specimen_ids = sorted({r.specimen_id for r in results if r.specimen_id is not None})
    if not specimen_ids:
        return []
    return sorted(set(session.connection().execute(
        select(Specimen.order_id).where(col(Specimen.id).in_(specimen_ids))
    ).scalars().all()))


def complete_orders(session: Session, order_ids: Sequence[int]) -> None:
    """An order whose every ordered test (not cancelled) has a released result becomes ``completed``."""
    if not order_ids:
        return
    tests = session.connection().execute(
        select(OrderTest.id, OrderTest.order_id)
        .where(col(OrderTest.order_id).in_(list(order_ids)), OrderTest.status != "cancelled")
    ).all()
    released = set(session.connection().execute(
        select(Result.order_test_id).where(col(Result.order_test_id).in_([t.id for t in tests]),
                                           Result.status == ResultStatus.RELEASED)
    ).scalars().all()) if tests else set()
    by_order: dict[int, bool] = {}
    for t in tests:
        by_order[t.order_id] = by_order.get(t.order_id, True) and t.id in released
    for order_id, done in by_order.items():
        if done:
            order = session.get(Order, order_id)
            if order is not None and order.status not in ("completed", "cancelled"):
                order.status = "completed"


def run_release_hooks(session: Session, hooks: Sequence[ReleaseHook], results: Sequence[Result],
                      correction: bool) -> list[int]:
    """Complete orders and call every hook inside the transaction; returns the order ids for the event."""
    if not results:
        return []
    orders = order_ids_of(session, results)
    complete_orders(session, orders)
    for hook in hooks:
        hook(session, results, correction)
    return orders


def publish_released(bus: EventBus, results: Sequence[Result] | Sequence[int], order_ids: Sequence[int],
                     correction: bool, released_by: str) -> None:
    """After the commit: tell the listeners (EMR outbox, live UI)."""
    ids = tuple(r if isinstance(r, int) else r.id or 0 for r in results)
    if ids:
        bus.publish(ResultReleased(result_ids=ids, order_ids=tuple(order_ids), correction=correction,
                                   released_by=released_by))
