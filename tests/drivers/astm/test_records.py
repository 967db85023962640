"""LIS2-A2 record codec: typed records, delimiters from H, escapes, encodings (hand-written fixtures)."""

from __future__ import annotations

import pytest

from drivers.astm.delimiters import Delimiters, RecordError
from drivers.astm.records import (
    CommentRecord,
    HeaderRecord,
    OrderRecord,
    PatientRecord,
    QueryRecord,
    ResultRecord,
    TerminatorRecord,
    UnknownRecord,
    decode_message,
    encode_message,
)

MESSAGE = (
    b"H|\\^&|||XN-550^00-22^12345|||||||P|E1394-97|20261126083000\r"
    b"P|1||PID1||Nguyen^Van A||19800101|M\r"
    b"O|1|S0001^L1||^^^^WBC\\^^^^HGB|R||||||N||||||||||||||F\r"
    b"R|1|^^^^WBC^1|8.13|10*3/uL||N\\H||F||||20261126083000\r"
    b"C|1|I|Value &S& checked &R& twice &F& &E&|G\r"
    b"Q|1|^S0002\\^S0003||ALL||||||||O\r"
    b"L|1|N\r"
)


def test_decode_gives_typed_records_with_named_fields() -> None:
    h, p, o, r, c, q, end = decode_message(MESSAGE)
    assert isinstance(h, HeaderRecord) and h.text("sender_id") == "XN-550"
    assert h.component("sender_id", 3) == "12345"
    assert h.timestamp == "20261126083000"
    assert isinstance(p, PatientRecord) and p.component("name", 2) == "Van A"
    assert isinstance(o, OrderRecord) and o.text("specimen_id") == "S0001"
    assert o.repeats("universal_test_id") == [["", "", "", "", "WBC"], ["", "", "", "", "HGB"]]
    assert o.action_code == "N" and o.report_type == "F"
    assert isinstance(r, ResultRecord) and r.value == "8.13" and r.units == "10*3/uL"
    assert r.repeats("abnormal_flags") == [["N"], ["H"]]
    assert r.component("universal_test_id", 5) == "WBC"
    assert isinstance(c, CommentRecord) and c.text("comment_text") == "Value ^ checked \\ twice | &"
    assert isinstance(q, QueryRecord) and q.request_status == "O"
    assert isinstance(end, TerminatorRecord) and end.termination_code == "N"
    assert r.field(1) == "R" and r.field(4) == "8.13" and r.field(99) == ""


def test_round_trip_is_byte_exact() -> None:
    assert encode_message(decode_message(MESSAGE)) == MESSAGE


def test_trailing_empty_fields_and_unknown_extra_fields_are_kept() -> None:
    text = b"H|\\^&\rR|1|^^^X|1||||||||||||extra1|extra2||\rZ|1|custom\rL|1\r"
    records = decode_message(text)
    assert records[1].extra == ("", "extra1", "extra2", "", "")  # R-15, then unknown R-16...
    assert isinstance(records[2], UnknownRecord) and records[2].record_type == "Z"
    assert encode_message(records) == text


@pytest.mark.parametrize(
    ("header", "repeat", "component", "escape"),
    [(b"H|\\^&", "\\", "^", "&"), (b"H|@^\\", "@", "^", "\\"), (b"H|`^&", "`", "^", "&")],
)
def test_delimiters_are_read_from_the_header(header: bytes, repeat: str, component: str, escape: str) -> None:
    rep, comp, esc = repeat.encode(), component.encode(), escape.encode()
    body = b"R|1|" + rep.join([comp * 3 + b"A", comp * 3 + b"B"]) + b"|x" + esc + b"S" + esc + b"y\r"
    records = decode_message(header + b"|\r" + body + b"L|1\r")
    d = records[0].delimiters
    assert (d.repeat, d.component, d.escape) == (repeat, component, escape)
    r = records[1]
    assert [rep_[3] for rep_ in r.repeats("universal_test_id")] == ["A", "B"]
    assert r.text("value") == f"x{component}y"


def test_hex_escape_uses_the_message_encoding() -> None:
    records = decode_message(b"H|\\^&\rC|1|I|caf&XC3A9&|G\r")
    assert records[1].text("comment_text", encoding="utf-8") == "café"
    assert records[1].text("comment_text", encoding="latin-1") == "cafÃ©"


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8"])
def test_text_encodings(encoding: str) -> None:
    name = "Müller^José"
    raw = f"H|\\^&\rP|1||||{name}\rL|1\r".encode(encoding)
    records = decode_message(raw, encoding)
    assert records[1].component("name", 2) == "José"
    assert encode_message(records, encoding=encoding) == raw


def test_undecodable_bytes_raise_a_clear_error() -> None:
    with pytest.raises(RecordError, match=r"0xE9 .* not valid ascii"):
        decode_message("H|\\^&\rP|1||||Jos\xe9\r".encode("latin-1"), "ascii")
    with pytest.raises(RecordError, match="unsupported text encoding"):
        decode_message(b"H|\\^&\r", "ebcdic")


def test_unencodable_text_raises_a_clear_error() -> None:
    p = PatientRecord.build(name=["Nông", "Thị Hoa"])  # ị is not in latin-1
    with pytest.raises(RecordError, match="latin-1 cannot encode"):
        encode_message([HeaderRecord.build(), p], encoding="latin-1")


def test_garbage_lines_are_refused() -> None:
    with pytest.raises(RecordError, match="line 2"):
        decode_message(b"H|\\^&\r\x00\x01garbage\r")
    with pytest.raises(RecordError):
        Delimiters("|", "|", "^", "&")


def test_build_escapes_values_and_encode_translates_delimiters() -> None:
    r = ResultRecord.build(sequence="1", universal_test_id=["", "", "", "A|B"], value="1^2")
    assert r.universal_test_id == "^^^A&F&B" and r.value == "1&S&2"
    genexpert = Delimiters(repeat="@", component="^", escape="\\")
    line = r.encode(genexpert)
    assert line == "R|1|^^^A\\F\\B|1\\S\\2"
    back = decode_message("H|@^\\\r" + line + "\r")[1]
    assert back.component("universal_test_id", 4) == "A|B" and back.text("value") == "1^2"


def test_records_separated_by_lf_and_crlf() -> None:
    records = decode_message(b"H|\\^&\r\nP|1\nL|1\n")
    assert [r.record_type for r in records] == ["H", "P", "L"]


def test_framed_bytes_are_deframed_first() -> None:
    from drivers.astm.framing import frame_message

    wire = b"\x05" + b"".join(frame_message(MESSAGE, text_size=13)) + b"\x04"
    assert encode_message(decode_message(wire)) == MESSAGE


def test_doubled_repeat_delimiter_quirk_is_collapsed_with_a_warning() -> None:
    warnings: list[str] = []
    records = decode_message(b"H|\\\\^&|||X\nM|1|A|B\\\\C\nL|1\n", warnings=warnings)
    assert records[0].delimiters == Delimiters()
    assert records[1].repeats(4) == [["B"], ["C"]]
    assert warnings and "doubled" in warnings[0]
