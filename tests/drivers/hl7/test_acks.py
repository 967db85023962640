"""Acknowledgements (HL7 v2.5.1 2.9.2): mirror version/charset, MSA-2 = MSH-10, ERR per version, fallback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import hl7 as python_hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as apy_parse

from drivers.hl7.acks import AckError, ack_for, build_ack, fallback_ack, read_msh
from drivers.hl7.message import ParseError, parse_message

Loader = Callable[[str], bytes]
NOW = datetime(2024, 3, 15, 3, 0, tzinfo=UTC)


def strictly_valid(raw: bytes, codec: str = "utf-8") -> None:
    """hl7apy re-parses the bytes at STRICT level and validates them; python-hl7 parses them too."""
    text = raw.decode(codec)
    assert text.endswith("\r")
    msg = apy_parse(text.rstrip("\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert msg.validate() is True
    assert str(python_hl7.parse(text).segment("MSH")[10]) == msg.msh.msh_10.to_er7()


@pytest.mark.parametrize(
    ("fixture", "version", "msh9", "charset"),
    [
        ("mindray_bc_oru_v231.hl7", "2.3.1", "ACK^R01^ACK", "UNICODE"),
        ("mindray_bs_oru_v231.hl7", "2.3.1", "ACK^R01^ACK", "ASCII"),
        ("law_oul_r22_v251.hl7", "2.5.1", "ACK^R22^ACK", "UNICODE UTF-8"),
        ("generic_oru_v251_hash.hl7", "2.5.1", "ACK^R01^ACK", "8859/1"),
    ],
)
def test_aa_mirrors_the_sender(load: Loader, fixture: str, version: str, msh9: str, charset: str) -> None:
    raw = load(fixture)
    incoming = parse_message(raw)
    ack = ack_for(raw, "AA", now=NOW, control_id="ACK1")
    strictly_valid(ack, incoming.codec)
    msg = parse_message(ack)
    msh = msg.msh
    assert msh.value(12) == version
    assert msh.field(9) == msh9
    assert msh.value(18) == charset
    assert msh.value(10) == "ACK1"
    assert msh.value(7) == "20240315100000+0700"
    assert msh.field(5) == incoming.msh.field(3) and msh.field(6) == incoming.msh.field(4)
    assert msh.value(3) == "LIS"
    assert msg.get("MSA.1") == "AA"
    assert msg.get("MSA.2") == incoming.msh.value(10)
    assert msg.segment("ERR") is None


def test_ack_for_v24_query_and_2_4_err(load: Loader) -> None:
    raw = load("mindray_bc_oru_v231.hl7").replace(b"|P|2.3.1|", b"|P|2.4|")
    ack = ack_for(raw, "AE", "unknown specimen", AckError(204, "no order", "OBR", 1, 3), now=NOW)
    strictly_valid(ack)
    msg = parse_message(ack)
    assert msg.msh.value(12) == "2.4"
    assert msg.segment("ERR").field(1) == "OBR^1^3^204&Unknown key identifier&HL70357"  # type: ignore[union-attr]


def test_ae_in_v231_uses_err1(load: Loader) -> None:
    ack = ack_for(load("mindray_bc_oru_v231.hl7"), "AE", "Không tìm thấy mẫu", AckError(204, "x", "OBR", 1, 3))
    strictly_valid(ack)
    msg = parse_message(ack)
    assert msg.get("MSA.1") == "AE"
    assert msg.get("MSA.3") == "Không tìm thấy mẫu"  # UTF-8 sender: Vietnamese kept
    err = msg.segment("ERR")
    assert err is not None
    assert err.value(1, 4, 1) == "204" and err.value(1, 4, 3) == "HL70357"
    assert err.value(1, 1) == "OBR"


def test_ae_in_v251_uses_err3_err4_and_diagnostics(load: Loader) -> None:
    ack = ack_for(load("law_oul_r22_v251.hl7"), "AE", "rejected", AckError(207, "database|down", "OBX", 2, 5), now=NOW)
    strictly_valid(ack)
    err = parse_message(ack).segment("ERR")
    assert err is not None
    assert err.field(1) == ""
    assert err.field(2) == "OBX^2^5"
    assert err.components(3) == ["207", "Application internal error", "HL70357"]
    assert err.value(4) == "E"
    assert err.value(7) == "database|down"  # escaped on the wire, intact after parsing
    assert "\\F\\" in err.field(7)


def test_ar_without_error_gets_a_default_err(load: Loader) -> None:
    ack = ack_for(load("law_oul_r22_v251.hl7"), "AR", "unsupported")
    strictly_valid(ack)
    msg = parse_message(ack)
    assert msg.get("MSA.1") == "AR"
    assert msg.get("ERR.3.1") == "207"
    assert msg.get("ERR.8") == "unsupported"


def test_ascii_sender_gets_folded_text(load: Loader) -> None:
    ack = ack_for(load("mindray_bs_oru_v231.hl7"), "AE", "Không tìm thấy mẫu")
    assert parse_message(ack).get("MSA.3") == "Khong tim thay mau"
    ack.decode("ascii")


def test_latin1_sender_gets_latin1_bytes(load: Loader) -> None:
    ack = ack_for(load("generic_oru_v251_hash.hl7"), "AE", "Lê Công")
    assert "Lê Công".encode("latin-1") in ack
    strictly_valid(ack, "latin-1")


def test_unknown_version_is_answered_in_251() -> None:
    raw = b"MSH|^~\\&|X||||20240101||ORU^R01|77|P|9.9\rPID|1\r"
    ack = ack_for(raw, "AA")
    strictly_valid(ack)
    assert parse_message(ack).msh.value(12) == "2.5.1"


def test_control_ids_are_generated_and_distinct(load: Loader) -> None:
    info = read_msh(load("law_oul_r22_v251.hl7"))
    first, second = build_ack(info, "AA"), build_ack(info, "AA")
    assert parse_message(first).msh.value(10) != parse_message(second).msh.value(10)
    assert len(parse_message(first).msh.value(10)) <= 20


def test_bad_code_is_refused(load: Loader) -> None:
    with pytest.raises(ValueError):
        build_ack(read_msh(load("law_oul_r22_v251.hl7")), "CA", "")  # type: ignore[arg-type]


def test_read_msh(load: Loader) -> None:
    info = read_msh(load("law_oul_r22_v251.hl7"))
    assert (info.control_id, info.version, info.message_code, info.trigger) == (
        "M-20240315-0001",
        "2.5.1",
        "OUL",
        "R22",
    )
    assert info.charset == "UNICODE UTF-8" and info.codec == "utf-8"
    with pytest.raises(ParseError):
        read_msh(b"not hl7")


@pytest.mark.parametrize("garbage", [b"", b"hello", b"H|\\^&\r", b"MSH", b"MSH1^~\\&"])
def test_unreadable_input_gets_the_fallback_ar(garbage: bytes) -> None:
    ack = ack_for(garbage, "AA", now=NOW, control_id="F1")
    text = ack.decode("ascii")
    # Hand-built on purpose: MSA-2 (required) is empty because the sender's MSH-10 is unknown, so hl7apy
    # reads it only at tolerant level; python-hl7 reads it too.
    apy = apy_parse(text.rstrip("\r"), validation_level=VALIDATION_LEVEL.TOLERANT)
    assert apy.msa.msa_1.to_er7() == "AR"
    assert str(python_hl7.parse(text).segment("MSA")[1]) == "AR"
    msg = parse_message(ack)
    assert msg.get("MSA.1") == "AR"
    assert msg.get("MSA.2") == ""
    assert msg.get("ERR.3.1") == "100"
    assert msg.msh.value(10) == "F1"


def test_fallback_ack_is_ascii_and_escaped() -> None:
    ack = fallback_ack("bad | thing ô", control_id="Z")
    ack.decode("ascii")
    assert parse_message(ack).get("MSA.3") == "bad | thing o"


def test_odd_msh_that_hl7apy_cannot_mirror_gets_a_hand_built_ack_with_msa2() -> None:
    raw = b"MSH|^~\\&|X||||20240101||ORU^R\\S\\01|C-9|P|2.5.1\rPID|1\r"
    ack = ack_for(raw, "AE", "odd trigger")
    msg = parse_message(ack)
    assert (msg.get("MSA.1"), msg.get("MSA.2"), msg.get("MSA.3")) == ("AE", "C-9", "odd trigger")
    assert msg.get("ERR.3.1") == "207"
