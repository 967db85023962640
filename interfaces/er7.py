"""ER7 text helpers (HL7 v2.5.1 2.7: escape sequences; 2.A.22 DTM date/time)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def escape(text: str) -> str:
    """Escape the delimiters in free text (HL7 v2.5.1 2.7.1); a line break becomes a space.

    HL7 v2.5.1 2.7.6: the formatting command ``\\.br\\`` belongs to FT fields only, and the LIS's FT text
    (comments) goes out one NTE segment per line; in ST/TX/IS fields a line break is a space.
    """
    for char, seq in _ESCAPES:
        text = text.replace(char, seq)
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def unescape(text: str) -> str:
    """Undo the delimiter escapes, and turn ``\\.br\\`` (an FT line break, HL7 v2.5.1 2.7.6) into a newline."""
    out = text.replace("\\.br\\", "\n")
    for char, seq in reversed(_ESCAPES):
        out = out.replace(seq, char)
    return out


def dtm(value: datetime, timezone: str) -> str:
    """A DTM in local time with offset, ``YYYYMMDDHHMMSS+ZZZZ`` (HL7 v2.5.1 2.A.22)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d%H%M%S%z")


def parse_dtm(text: str, timezone: str) -> datetime:
    """A DTM (``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]``) as aware UTC; naive values are local time.

    Raises ValueError naming the value when it is not a date/time.
    """
    raw = text.strip()
    offset = ""
    for sign in ("+", "-"):
        if sign in raw[4:]:
            idx = raw.index(sign, 4)
            raw, offset = raw[:idx], raw[idx:]
    raw = raw.split(".")[0]
    formats = {4: "%Y", 6: "%Y%m", 8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    fmt = formats.get(len(raw))
    if fmt is None or not raw.isdigit():
        raise ValueError(f"{text!r} is not an HL7 date/time (YYYYMMDD[HHMM[SS]])")
    try:
        if offset:
            parsed = datetime.strptime(raw + offset, fmt + "%z")
        else:
            parsed = datetime.strptime(raw, fmt).replace(tzinfo=ZoneInfo(timezone))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date/time") from exc
    return parsed.astimezone(UTC)


def parse_date(text: str) -> date:
    """An HL7 DT/DTM birth date ``YYYYMMDD[...]`` as a date; ValueError naming the value otherwise."""
    raw = text.strip()[:8]
    if len(raw) != 8 or not raw.isdigit():
        raise ValueError(f"{text!r} is not an HL7 date (YYYYMMDD)")
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date") from exc
