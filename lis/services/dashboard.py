"""Today's numbers for the dashboard: workload, pending counts by section and status, quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, func, select

from lis.models import Order, RawMessage, RawMessageStatus, Result, ResultStatus, TestDefinition

OPEN_STATUSES = (ResultStatus.RECEIVED, ResultStatus.PENDING, ResultStatus.TECHNICALLY_VALIDATED,
                 ResultStatus.RERUN_REQUESTED)


def local_day_start(tz: str, now: datetime | None = None) -> datetime:
    """Midnight of today in the lab's time zone, as aware UTC."""
    local_now = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz))
    return datetime.combine(local_now.date(), time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


@dataclass
class Workload:
    orders_today: int = 0
    results_today: int = 0
    released_today: int = 0
    open_by_status: dict[str, int] = field(default_factory=dict)
    open_by_section: dict[str, int] = field(default_factory=dict)
    unmatched: int = 0
    quarantined: int = 0
    results_by_hour: list[tuple[int, int]] = field(default_factory=list)  # (local hour, count)


def workload(session: Session, tz: str, now: datetime | None = None) -> Workload:
    start = local_day_start(tz, now)
    out = Workload()
    out.orders_today = int(session.exec(select(func.count()).select_from(Order)
                                        .where(col(Order.created_at) >= start)).one())
    patient = col(Result.is_qc).is_(False)
    out.results_today = int(session.exec(select(func.count()).select_from(Result)
                                         .where(patient, col(Result.received_at) >= start)).one())
    out.released_today = int(session.exec(select(func.count()).select_from(Result).where(
        patient, Result.status == ResultStatus.RELEASED, col(Result.updated_at) >= start)).one())
    out.open_by_status = {s: int(n) for s, n in session.exec(
        select(Result.status, func.count()).where(patient, col(Result.status).in_(OPEN_STATUSES))
        .group_by(Result.status)).all()}
    out.open_by_section = {str(s or "?"): int(n) for s, n in session.exec(
        select(TestDefinition.section, func.count())
        .select_from(Result).join(TestDefinition, col(Result.test_code) == TestDefinition.code, isouter=True)
        .where(patient, col(Result.status).in_(OPEN_STATUSES)).group_by(TestDefinition.section)).all()}
    out.unmatched = int(session.exec(select(func.count()).select_from(Result)
                                     .where(Result.status == ResultStatus.UNMATCHED)).one())
    out.quarantined = int(session.exec(select(func.count()).select_from(RawMessage)
                                       .where(RawMessage.status == RawMessageStatus.ERROR)).one())
    zone = ZoneInfo(tz)
    hours: dict[int, int] = {}
    for stamp in session.exec(select(Result.received_at).where(patient, col(Result.received_at) >= start)
                              .limit(200_000)).all():
        hour = stamp.astimezone(zone).hour
        hours[hour] = hours.get(hour, 0) + 1
    out.results_by_hour = sorted(hours.items())
    return out


def day_bounds(tz: str, day_offset: int = 0) -> tuple[datetime, datetime]:
    start = local_day_start(tz) + timedelta(days=day_offset)
    return start, start + timedelta(days=1)
