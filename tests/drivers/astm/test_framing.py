"""LIS1-A frames: checksum, building, splitting and de-framing captures (hand-written fixtures)."""

from __future__ import annotations

import pytest

from drivers.astm.framing import (
    FrameError,
    build_frame,
    checksum,
    deframe,
    frame_message,
    iter_frames,
    parse_frame,
    split_records,
)


def test_checksum_is_sum_mod_256_in_upper_case_hex() -> None:
    # "1" (0x31) + "L|1|N\r" + ETX
    body = b"1L|1|N\r\x03"
    assert checksum(body) == f"{sum(body) % 256:02X}".encode()
    assert build_frame(1, b"L|1|N\r", last=True) == b"\x021L|1|N\r\x03" + checksum(body) + b"\r\n"


def test_known_frame_from_the_standard_shape() -> None:
    # checksum verified by hand: sum("1H|\\^&\r" + ETX) = 0x1E1 -> E1... computed independently below
    body = b"1H|\\^&\r\x03"
    total = 0
    for byte in body:
        total = (total + byte) & 0xFF
    assert checksum(body).decode() == format(total, "02X")


def test_intermediate_frames_end_with_etb_and_last_with_etx() -> None:
    frames = frame_message(b"R|1|" + b"x" * 10 + b"\r", text_size=5)
    assert [f[-5] for f in frames] == [0x17, 0x17, 0x03]
    assert b"".join(parse_frame(f).text for f in frames) == b"R|1|" + b"x" * 10 + b"\r"


def test_frame_numbers_continue_across_records_modulo_8() -> None:
    records = b"".join(b"R|%d\r" % i for i in range(10))
    frames = frame_message(records, text_size=240, first_fn=6)
    assert [parse_frame(f).number for f in frames] == [6, 7, 0, 1, 2, 3, 4, 5, 6, 7]


def test_parse_frame_reports_bad_and_lower_case_checksums() -> None:
    frame = build_frame(3, b"O|1|S1\r", last=False)
    assert parse_frame(frame).checksum_ok
    lower = frame[:-4] + frame[-4:-2].lower() + b"\r\n"
    assert parse_frame(lower).checksum_ok
    broken = frame[:-4] + b"ZZ\r\n"
    assert not parse_frame(broken).checksum_ok
    with pytest.raises(FrameError):
        parse_frame(b"junk")
    with pytest.raises(FrameError):
        build_frame(8, b"x", last=True)


def test_split_records_accepts_cr_lf_and_crlf() -> None:
    assert split_records(b"H|\\^&\nP|1\r\nL|1\r\r") == [b"H|\\^&\r", b"P|1\r", b"L|1\r"]


def test_deframe_raw_capture_with_enq_eot_and_etb() -> None:
    message = b"H|\\^&\rO|1|S1||^^^GLU\rL|1|N\r"
    wire = b"\x05" + b"".join(frame_message(message, text_size=7)) + b"\x04"
    assert deframe(wire) == message


def test_deframe_tolerates_repeated_frame_numbers_cr_only_and_long_frames() -> None:
    a = build_frame(1, b"H|\\^&\r" + b"R|1|^^^X|" + b"9" * 1000 + b"\r", last=True)[:-1]  # CR only
    b = build_frame(1, b"L|1|N\r", last=True)  # repeated frame number
    assert deframe(a + b) == b"H|\\^&\rR|1|^^^X|" + b"9" * 1000 + b"\rL|1|N\r"
    assert [f.number for f in iter_frames(a + b)] == [1, 1]


def test_deframe_unframed_records_normalises_line_ends() -> None:
    assert deframe(b"H|\\^&\nP|1\nL|1|N\n") == b"H|\\^&\rP|1\rL|1|N\r"


def test_deframe_skips_a_frame_cut_short_by_a_new_stx() -> None:
    good = build_frame(2, b"L|1|N\r", last=True)
    assert deframe(b"\x021H|\\^" + good) == b"L|1|N\r"
