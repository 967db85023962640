"""Reference-range selection by sex, age at collection and instrument (most specific range wins)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from lis.config import DEFAULT_TIMEZONE
from lis.models import ReferenceRange

LOCAL_TZ = ZoneInfo(DEFAULT_TIMEZONE)


@dataclass(frozen=True, slots=True)
class RangeLimits:
    """The limits of one reference range row, detached from the session (cheap to cache per batch)."""

    id: int | None
    test_code: str
    sex: str
    age_min_days: int
    age_max_days: int | None
    instrument: str | None
    low: float | None
    high: float | None
    critical_low: float | None
    critical_high: float | None
    text: str

    @classmethod
    def of(cls, row: ReferenceRange) -> RangeLimits:
        return cls(row.id, row.test_code, row.sex, row.age_min_days, row.age_max_days, row.instrument, row.low,
                   row.high, row.critical_low, row.critical_high, row.text)

    def describe(self) -> str:
        """As shown to a validator: "3.9-6.4", "< 5.2", "> 1.0", "Negative"."""
        if self.text:
            return self.text
        if self.low is not None and self.high is not None:
            return f"{self.low:g}-{self.high:g}"
        if self.high is not None:
            return f"<= {self.high:g}"
        if self.low is not None:
            return f">= {self.low:g}"
        return ""


def age_in_days(birth_date: date | None, at: datetime) -> int | None:
    """Age at ``at`` (collection time) in whole days, counted on the local calendar; None when unknown."""
    if birth_date is None:
        return None
    return (at.astimezone(LOCAL_TZ).date() - birth_date).days


def _specificity(r: RangeLimits) -> tuple[int, int, float, int]:
    width = float("inf") if r.age_max_days is None else r.age_max_days - r.age_min_days
    return (1 if r.instrument else 0, 1 if r.sex in ("M", "F") else 0, -width, -(r.id or 0))


def select_range(ranges: Iterable[RangeLimits], sex: str, age_days: int | None,
                 instrument: str) -> RangeLimits | None:
    """The most specific range that applies (CLSI EP28: partitioned reference intervals).

    Applies: same sex or ``U``; ``age_min_days <= age < age_max_days`` (upper bound exclusive); no
    instrument or this instrument. Most specific: an instrument-specific range beats a general one, a
    sex-specific one beats ``U``, a narrower age band beats a wider one. A patient of unknown sex gets only
    ``U`` ranges; of unknown age only ranges without an upper age bound (the adult range).
    """
    best: RangeLimits | None = None
    best_key: tuple[int, int, float, int] | None = None
    for r in ranges:
        if r.sex != "U" and r.sex != sex:
            continue
        if r.instrument and r.instrument != instrument:
            continue
        if age_days is None:
            if r.age_max_days is not None:
                continue
        elif age_days < r.age_min_days or (r.age_max_days is not None and age_days >= r.age_max_days):
            continue
        key = _specificity(r)
        if best_key is None or key > best_key:
            best, best_key = r, key
    return best
