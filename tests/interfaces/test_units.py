"""Sans-IO pieces: MLLP framing, ACK reading, backoff, HL7 date/time (no database, no sockets)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from interfaces.er7 import dtm, escape, parse_date, parse_dtm, unescape
from interfaces.hl7_ack import MalformedAck, parse_ack
from interfaces.mllp import FrameTooLarge, MllpFramer, frame
from interfaces.worker import OutboxSettings, backoff_delay


def test_framer_byte_by_byte_and_stray_bytes() -> None:
    data = b"noise" + frame(b"MSH|one\r") + b"\r\n" + frame(b"MSH|two\r")
    framer = MllpFramer()
    out = []
    for i in range(len(data)):
        out += framer.feed(data[i : i + 1])
    assert out == [b"MSH|one\r", b"MSH|two\r"] and framer.stray_bytes == 7


def test_framer_restarts_on_a_new_vt_and_limits_size() -> None:
    framer = MllpFramer(max_size=10)
    assert framer.feed(b"\x0bpartial\x0bMSH|ok\x1c\r") == [b"MSH|ok"]
    with pytest.raises(FrameTooLarge):
        framer.feed(b"\x0b" + b"x" * 20)
    assert framer.feed(frame(b"MSH|x")) == [b"MSH|x"]
    with pytest.raises(ValueError):
        frame(b"bad\x1cbyte")


def test_ack_codes_and_reasons() -> None:
    aa = b"MSH|^~\\&|HIS||LIS||20261126||ACK|9|P|2.5.1\rMSA|AA|CID1\r"
    assert parse_ack(aa, "CID1").accepted
    ae = b"MSH|^~\\&|HIS||LIS||20261126||ACK|9|P|2.5.1\rMSA|AE|CID1\rERR|||207^x^HL70357|E||||No such visit\r"
    info = parse_ack(ae, "CID1")
    assert not info.accepted and info.code == "AE" and info.text == "No such visit"
    with pytest.raises(MalformedAck, match="does not echo"):
        parse_ack(aa, "OTHER")
    for junk in (b"", b"hello", b"MSH|^~\\&|HIS\rPID|1\r", b"MSH|^~\\&|X\rMSA|ZZ|CID1\r"):
        with pytest.raises(MalformedAck):
            parse_ack(junk, "CID1")


def test_backoff_is_exponential_capped_and_jittered() -> None:
    settings = OutboxSettings(backoff_base=2, backoff_cap=60, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff_delay(n, settings, rng) for n in range(1, 10)]
    assert 1 <= delays[0] <= 2 and 4 <= delays[2] <= 8 and all(30 <= d <= 60 for d in delays[6:])
    assert len({round(backoff_delay(3, settings, rng), 6) for _ in range(20)}) > 1  # jitter spreads retries


def test_er7_text_and_times() -> None:
    text = "a|b^c&d~e\\f g"
    assert unescape(escape(text)) == text and "|" not in escape(text)
    assert escape("a\r\nb\nc") == "a b c"  # HL7 v2.5.1 2.7.6: .br only in FT; a line break is a space
    assert unescape("dòng 1\\.br\\dòng 2") == "dòng 1\ndòng 2"  # an FT line break from the EMR
    assert dtm(datetime(2026, 11, 26, 1, 30, tzinfo=UTC), "Asia/Ho_Chi_Minh") == "20261126083000+0700"
    assert parse_dtm("202611260830", "Asia/Ho_Chi_Minh") == datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
    assert parse_dtm("20261126083000+0000", "Asia/Ho_Chi_Minh").hour == 8
    with pytest.raises(ValueError, match="19851302"):
        parse_date("19851302")
    with pytest.raises(ValueError):
        parse_dtm("2026-11-26", "Asia/Ho_Chi_Minh")
