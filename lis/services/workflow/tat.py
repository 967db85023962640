"""Turnaround time report (pandas): median and 90th percentile of specimen-received → released, per test and
section, per local day and over the whole period. Each released result stores its own
``turnaround_seconds`` at release, so the report is a pure aggregation."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
from sqlmodel import Session, col, select

from lis.config import DEFAULT_TIMEZONE
from lis.models import Result, TestDefinition


def tat_frame(session: Session, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    stmt = (select(Result.test_code, TestDefinition.section, Result.released_at, Result.turnaround_seconds)
            .join(TestDefinition, col(TestDefinition.code) == Result.test_code)
            .where(col(Result.released_at).is_not(None), col(Result.turnaround_seconds).is_not(None),
                   col(Result.is_qc).is_(False), Result.revision == 0))
    if since is not None:
        stmt = stmt.where(col(Result.released_at) >= since)
    if until is not None:
        stmt = stmt.where(col(Result.released_at) < until)
    rows = session.exec(stmt).all()
    return pd.DataFrame(rows, columns=["test_code", "section", "released_at", "tat_seconds"])


def _aggregate(frame: pd.DataFrame, keys: list[str]) -> list[dict[str, object]]:
    grouped = frame.groupby(keys, sort=True)["tat_minutes"]
    table = pd.DataFrame({"count": grouped.size(), "median_minutes": grouped.median(),
                          "p90_minutes": grouped.quantile(0.9)}).reset_index()
    table["median_minutes"] = table["median_minutes"].round(1)
    table["p90_minutes"] = table["p90_minutes"].round(1)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in table.to_dict(orient="records")]


def tat_report(session: Session, since: datetime | None = None, until: datetime | None = None,
               timezone: str = DEFAULT_TIMEZONE) -> dict[str, list[dict[str, object]]]:
    """``{"by_day": [...], "overall": [...], "by_section": [...]}``; days are local calendar days."""
    frame = tat_frame(session, since, until)
    if frame.empty:
        return {"by_day": [], "overall": [], "by_section": []}
    frame["tat_minutes"] = frame["tat_seconds"].astype(float) / 60.0
    local = pd.to_datetime(frame["released_at"], utc=True).dt.tz_convert(ZoneInfo(timezone))
    frame["day"] = local.dt.strftime("%Y-%m-%d")
    return {
        "by_day": _aggregate(frame, ["day", "section", "test_code"]),
        "overall": _aggregate(frame, ["section", "test_code"]),
        "by_section": _aggregate(frame, ["section"]),
    }
