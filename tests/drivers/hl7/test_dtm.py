"""HL7 DTM/TS parsing (HL7 v2.5.1 2A.3.22): precision, offsets, local zone; MSH-18 character sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from drivers.hl7.charset import charset_for_codec, codec_for_charset
from drivers.hl7.dtm import format_dtm, parse_dtm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240315093000", datetime(2024, 3, 15, 2, 30, tzinfo=UTC)),  # naive = Asia/Ho_Chi_Minh (+07)
        ("20240315093000+0000", datetime(2024, 3, 15, 9, 30, tzinfo=UTC)),
        ("20240315093000-0500", datetime(2024, 3, 15, 14, 30, tzinfo=UTC)),
        ("202403150930", datetime(2024, 3, 15, 2, 30, tzinfo=UTC)),
        ("20240315", datetime(2024, 3, 14, 17, 0, tzinfo=UTC)),
        ("2024", datetime(2023, 12, 31, 17, 0, tzinfo=UTC)),
        ("20240315093000.25", datetime(2024, 3, 15, 2, 30, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_dtm(text: str, expected: datetime) -> None:
    assert parse_dtm(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "2024XX", "20241301", "2024031509300", "20240315+07", "abc", "2024.x"])
def test_bad_dtm_is_none(text: str) -> None:
    assert parse_dtm(text) is None


def test_other_local_zone() -> None:
    assert parse_dtm("20240315093000", "UTC") == datetime(2024, 3, 15, 9, 30, tzinfo=UTC)


def test_format_dtm_is_local_with_offset() -> None:
    assert format_dtm(datetime(2024, 3, 15, 2, 30, tzinfo=UTC)) == "20240315093000+0700"
    assert format_dtm(datetime(2024, 3, 15, 2, 30, tzinfo=timezone(timedelta(hours=1))), "UTC") == "20240315013000+0000"
    with pytest.raises(ValueError):
        format_dtm(datetime(2024, 3, 15))


@pytest.mark.parametrize(
    ("msh18", "codec"),
    [
        ("UNICODE UTF-8", "utf-8"),
        ("unicode  utf-8", "utf-8"),
        ("UNICODE", "utf-8"),
        ("8859/1", "iso8859-1"),
        ("8859/15", "iso8859-15"),
        ("ASCII", "ascii"),
        ("ISO IR100", "latin-1"),
        ("GB 18030-2000", "gb18030"),
        ("cp1258", "cp1258"),
        ("", None),
        ("KLINGON", None),
    ],
)
def test_codec_for_charset(msh18: str, codec: str | None) -> None:
    assert codec_for_charset(msh18) == codec


def test_charset_for_codec() -> None:
    assert charset_for_codec("utf-8") == "UNICODE UTF-8"
    assert charset_for_codec("latin-1") == "8859/1"
    assert charset_for_codec("ascii") == "ASCII"
