"""HL7 v2 date/time values (DTM / TS, HL7 v2.5.1 2A.3.22 and 2A.3.77).

Format ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``; a TS may carry a second component (degree of
precision), which is ignored. Without an offset the time is the sender's local time: analysers in this lab send
local time (ARCHITECTURE.md, "Time"), so a naive value is read in the instrument's zone (default
Asia/Ho_Chi_Minh) and returned as timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


@cache
def zone(name: str) -> tzinfo:
    """The named IANA zone (cached)."""
    return ZoneInfo(name)


def parse_dtm(value: str, local_zone: str = DEFAULT_TIMEZONE) -> datetime | None:
    """Parse an HL7 DTM into aware UTC; None for an empty or malformed value (the caller may warn)."""
    text = value.strip()
    if not text:
        return None
    offset: timezone | None = None
    for sign in ("+", "-"):
        k = text.find(sign, 4)
        if k > 0:
            zz = text[k + 1 :]
            if len(zz) != 4 or not zz.isdigit():
                return None
            minutes = int(zz[:2]) * 60 + int(zz[2:])
            offset = timezone(timedelta(minutes=minutes if sign == "+" else -minutes))
            text = text[:k]
            break
    frac = ""
    if "." in text:
        text, frac = text.split(".", 1)
        if not frac.isdigit():
            return None
    if not text.isdigit() or len(text) not in (4, 6, 8, 10, 12, 14):
        return None
    parts = [int(text[0:4]), int(text[4:6] or 1), int(text[6:8] or 1)]
    parts += [int(text[i : i + 2] or 0) for i in (8, 10, 12)]
    micro = int((frac + "000000")[:6]) if frac else 0
    try:
        naive = datetime(*parts, micro)  # type: ignore[misc]
    except ValueError:
        return None
    aware = naive.replace(tzinfo=offset if offset is not None else zone(local_zone))
    return aware.astimezone(UTC)


def format_dtm(moment: datetime, local_zone: str = DEFAULT_TIMEZONE) -> str:
    """Format an aware datetime as an HL7 DTM to the second with its offset, in the local zone."""
    if moment.tzinfo is None:
        raise ValueError("format_dtm needs a timezone-aware datetime")
    local = moment.astimezone(zone(local_zone))
    return local.strftime("%Y%m%d%H%M%S%z")
