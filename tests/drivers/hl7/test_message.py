"""The fast HL7 v2 parser (HL7 v2.5.1 chapter 2): delimiters, segments, escapes, character sets, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hl7 as python_hl7
import pytest

from drivers.hl7.message import Delimiters, ParseError, escape, parse_message, parse_path, unescape

FIXTURES = Path(__file__).with_name("fixtures")
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.hl7"))


def load_fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\n", b"\r")


BASIC = b"MSH|^~\\&|APP|FAC|||20240101120000||ORU^R01|42|P|2.5.1\rPID|1||ID1^^^H~ID2^^^X||Doe^John^Q||19800101|M\r"


def test_fields_components_repeats_subcomponents() -> None:
    msg = parse_message(BASIC)
    pid = msg.segment("PID")
    assert pid is not None
    assert pid.field(3) == "ID1^^^H~ID2^^^X"
    assert pid.repeats(3) == ["ID1^^^H", "ID2^^^X"]
    assert pid.value(3, 1) == "ID1"
    assert pid.value(3, 4, repeat=2) == "X"
    assert pid.value(3, 9) == ""
    assert pid.value(3, 1, repeat=3) == ""
    assert pid.value(99) == ""
    assert pid.components(5) == ["Doe", "John", "Q"]
    assert msg.get("PID.7") == "19800101"


def test_msh_numbering_counts_the_field_separator_as_msh1() -> None:
    msh = parse_message(BASIC).msh
    assert msh.value(1) == "|"
    assert msh.value(2) == "^~\\&"
    assert msh.value(3) == "APP"
    assert msh.value(9, 2) == "R01"
    assert msh.value(10) == "42"
    assert msh.value(12) == "2.5.1"


@pytest.mark.parametrize("terminator", [b"\r", b"\n", b"\r\n"])
def test_segment_terminators(terminator: bytes) -> None:
    msg = parse_message(BASIC.replace(b"\r", terminator))
    assert [s.name for s in msg] == ["MSH", "PID"]


def test_other_delimiters_are_read_from_msh() -> None:
    msg = parse_message(load_fixture("generic_oru_v251_hash.hl7"))
    assert msg.delimiters == Delimiters("#", "$", "*", "\\", "@")
    obx = msg.segments("OBX")[0]
    assert obx.value(3, 2) == "C-reactive protein"
    assert obx.value(5) == "value with # and $ and @ and * and \\ done"
    assert obx.repeats(8) == ["H", "HH"]


def test_escape_sequences() -> None:
    d = Delimiters()
    assert unescape(r"a\F\b\S\c\T\d\R\e\E\f", d) == "a|b^c&d~e\\f"
    assert unescape(r"line1\.br\line2", d) == "line1\nline2"
    assert unescape("\\X4869\\ there", d) == "Hi there"
    assert unescape("\\XC3B4\\", d, "utf-8") == "ô"
    assert unescape(r"\H\bold\N\ text", d) == "bold text"
    assert unescape(r"unterminated \F", d) == r"unterminated \F"
    assert unescape(r"\Q\ unknown", d) == r"\Q\ unknown"


def test_escape_round_trips_through_unescape() -> None:
    text = "a|b^c&d~e\\f\nnext"
    assert unescape(escape(text), Delimiters()) == text


def test_utf8_declared_in_msh18() -> None:
    raw = "MSH|^~\\&|A||||20240101||ORU^R01|1|P|2.5.1||||||UNICODE UTF-8\rPID|1||1||Nông^Hoa^Thị\r"
    msg = parse_message(raw.encode("utf-8"))
    assert msg.codec == "utf-8"
    assert msg.get("PID.5.1") == "Nông"
    assert msg.get("PID.5.3") == "Thị"
    assert msg.warnings == []


def test_latin1_declared_as_8859_1() -> None:
    raw = "MSH|^~\\&|A||||20240101||ORU^R01|1|P|2.4||||||8859/1\rPID|1||1||Lê^Công^Thành\r"
    msg = parse_message(raw.encode("latin-1"))
    assert msg.codec == "iso8859-1"
    assert msg.get("PID.5.1") == "Lê"
    assert msg.get("PID.5.2") == "Công"


def test_mindray_unicode_means_utf8() -> None:
    raw = "MSH|^~\\&|Mindray||||20240101||ORU^R01|1|P|2.3.1||||||UNICODE\rPID|1||1||^Nguyễn Văn A\r"
    assert parse_message(raw.encode("utf-8")).get("PID.5.2") == "Nguyễn Văn A"


def test_fallback_encoding_when_msh18_is_empty() -> None:
    raw = "MSH|^~\\&|A||||20240101||ORU^R01|1|P|2.3.1\rPID|1||1||Lê^Công\r".encode("cp1252")
    assert parse_message(raw, "cp1252").get("PID.5.1") == "Lê"


def test_declared_ascii_but_utf8_bytes_falls_back_with_a_warning() -> None:
    raw = "MSH|^~\\&|A||||20240101||ORU^R01|1|P|2.3.1||||||ASCII\rPID|1||1||Nông\r".encode()
    msg = parse_message(raw, "utf-8")
    assert msg.get("PID.5") == "Nông"
    assert msg.warnings == ["text is not valid ascii: decoded as utf-8"]


def test_unknown_charset_is_reported() -> None:
    raw = b"MSH|^~\\&|A||||20240101||ORU^R01|1|P|2.3.1||||||KLINGON\rPID|1\r"
    assert "unknown character set 'KLINGON' in MSH-18" in parse_message(raw).warnings


def test_bom_and_leading_whitespace_are_tolerated() -> None:
    assert parse_message(b"\xef\xbb\xbf\r\n" + BASIC).msh.value(10) == "42"


def test_text_input_is_accepted() -> None:
    assert parse_message(BASIC.decode()).msh.value(10) == "42"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"H|\\^&|||cobas\r", "no MSH segment"),
        (b"PID|1\rMSH|^~\\&|A\r", "data before the MSH segment"),
        (b"MSHA^~\\&|A\r", "bad field separator"),
        (b"MSH ^~\\&|A\r", "bad field separator"),
        (b"MSH||A\r", "bad encoding characters"),
        (b"MSH|^^\\&|A\r", "bad encoding characters"),
        (b"MSH|", "bad encoding characters"),
        (b"MSH", "too short"),
        (b"FHS|^~\\&\rBHS|^~\\&\r", "batch"),
    ],
)
def test_parse_errors_name_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_message(raw)


def test_short_encoding_characters_disable_the_missing_delimiters() -> None:
    msg = parse_message(b"MSH|^~|A||||20240101||ORU^R01|1\rOBX|1|ST|X||a\\b&c\r")
    assert msg.delimiters.escape == ""
    assert msg.segment("OBX").value(5) == "a\\b&c"  # type: ignore[union-attr]


def test_parse_path() -> None:
    assert parse_path("SPM.2.1") == ("SPM", (2, 1))
    assert parse_path("obr-3") == ("OBR", (3,))
    for bad in ("SPM", "SPM.x", "SPM.0", "TOOLONG.1", "A.1.2.3.4"):
        with pytest.raises(ValueError):
            parse_path(bad)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fields_equal_python_hl7(name: str, load: Callable[[str], bytes]) -> None:
    """Our raw fields and unescaped leaves equal python-hl7's on every fixture."""
    raw = load(name)
    ours = parse_message(raw)
    theirs = python_hl7.parse(raw.decode(ours.codec))
    assert [s.name for s in ours] == [str(s[0]) for s in theirs]
    counts: dict[str, int] = {}
    for seg, pseg in zip(ours, theirs, strict=True):
        counts[seg.name] = counts.get(seg.name, 0) + 1
        assert len(seg) == len(pseg) - 1
        for n in range(1, len(seg) + 1):
            assert seg.field(n) == str(pseg[n]), (seg.name, n)
            if seg.name == "MSH" and n <= 2:
                continue
            for r, rep in enumerate(seg.repeats(n), start=1):
                for c in range(1, len(rep.split(ours.delimiters.component)) + 1):
                    expected = theirs.extract_field(seg.name, counts[seg.name], n, r, c)
                    assert seg.value(n, c, repeat=r) == expected.replace("\r", "\n"), (seg.name, n, r, c)
