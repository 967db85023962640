"""parse_astm on hand-written messages: QC recognition, queries, encodings, errors, several messages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from drivers.astm.framing import frame_message
from drivers.astm.report import parse_astm, parse_timestamp
from drivers.profile import ProfileError, get_profile
from lis.instrument_report import MessageKind, MessageParseError

GENERIC = get_profile("generic-astm")


def message(*records: str) -> bytes:
    return ("\r".join(records) + "\r").encode("latin-1")


def test_results_with_flags_status_time_and_mapping() -> None:
    profile = dataclasses.replace(GENERIC, flags={"+": "H", "-": "L"})
    raw = message(
        "H|\\^&|CTRL42||ANALYSER^1.0|||||||P|LIS2-A2|20261126083000",
        "P|1||PID7||Tran^Binh||19700101|M",
        "O|1|S0001||^^^GLU|R||||||N||||SERUM",
        "R|1|^^^GLU^Glucose|7.8|mmol/L|3.9-6.1|+\\A||F||TECH1||20261126082959|MOD1",
        "C|1|I|hemolysed|G",
        "R|2|^^^NA|140|mmol/L||N||C",
        "L|1|N",
    )
    report = parse_astm(raw, profile)
    assert report.kind is MessageKind.RESULTS
    assert (report.sender, report.control_id, report.message_type) == ("ANALYSER^1.0", "CTRL42", "ASTM")
    assert report.sent_at == datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
    (spec,) = report.specimens
    assert (spec.specimen_id, spec.patient_id, spec.patient_name, spec.patient_sex) == ("S0001", "PID7",
                                                                                       "Tran Binh", "M")
    glu, na = spec.observations
    assert (glu.instrument_test_code, glu.value, glu.units, glu.reference_range) == ("GLU", "7.8", "mmol/L",
                                                                                      "3.9-6.1")
    assert glu.abnormal_flags == "H~A"
    assert (glu.result_status, glu.operator, glu.instrument_id, glu.comment) == ("F", "TECH1", "MOD1", "hemolysed")
    assert glu.observed_at == datetime(2026, 11, 26, 1, 29, 59, tzinfo=UTC)
    assert na.result_status == "C" and na.sequence == 1 and na.observed_at is None
    assert not spec.is_qc


def test_profile_code_map_sets_catalogue_code_loinc_and_unit() -> None:
    profile = get_profile("sysmex-xn")
    raw = message("H|\\^&", "O|1||^^   QC-L1", "R|1|^^^^HGB^1|13.5|g/dL||N||F", "L|1")
    obs = parse_astm(raw, profile).specimens[0].observations[0]
    assert (obs.mapped_test_code, obs.loinc, obs.unit_override) == ("HGB", "718-7", "g/dL")


@pytest.mark.parametrize(
    ("order", "header_processing", "is_qc"),
    [
        ("O|1|S1||^^^GLU|R||||||Q", "P", True),  # O-12 action code Q
        ("O|1|QC-NORMAL||^^^GLU|R||||||N", "P", True),  # specimen id pattern ^QC
        ("O|1|S1||^^^GLU|R||||||N", "Q", True),  # H-12 processing id Q
        ("O|1|S1||^^^GLU|R||||||N", "P", False),
    ],
)
def test_qc_recognition(order: str, header_processing: str, is_qc: bool) -> None:
    raw = message(f"H|\\^&||||||||||{header_processing}", order, "R|1|^^^GLU|5.5", "L|1")
    assert parse_astm(raw, GENERIC).specimens[0].is_qc is is_qc


def test_qc_material_lot_and_level_from_profile_fields() -> None:
    qc = dataclasses.replace(GENERIC.qc, material_field="O.3.1", lot_field="O.3.2", level_field="O.3.3")
    profile = dataclasses.replace(GENERIC, qc=qc)
    raw = message("H|\\^&", "O|1|LYPHO^LOT77^2||^^^GLU|R||||||Q", "R|1|^^^GLU|5.5", "L|1")
    spec = parse_astm(raw, profile).specimens[0]
    assert (spec.control_material, spec.control_lot, spec.control_level) == ("LYPHO", "LOT77", "2")


def test_specimen_id_falls_back_to_o4_when_o3_is_empty() -> None:
    raw = message("H|\\^&", "O|1||INST-9^R1^3||^^^GLU", "R|1|^^^GLU|5.5", "L|1")
    assert parse_astm(raw, GENERIC).specimens[0].specimen_id == "INST-9"


def test_host_query_with_several_ids_and_all() -> None:
    raw = message("H|\\^&|||ANALYSER", "Q|1|^S1\\^S2\\P9^||^^^ALL||||||||O", "Q|2|ALL||||||||||O", "L|1")
    report = parse_astm(raw, GENERIC)
    assert report.kind is MessageKind.QUERY
    assert report.queries[0].specimen_ids == ["S1", "S2", "P9"]
    assert report.queries[1].all_pending and report.queries[1].specimen_ids == []


def test_several_messages_in_one_capture_and_framed_input() -> None:
    one = message("H|\\^&|||A", "P|1", "O|1|S1||^^^GLU", "R|1|^^^GLU|5.5", "L|1")
    two = message("H|\\^&|||A", "P|1", "O|1|S2||^^^GLU", "R|1|^^^GLU|6.5", "L|1")
    framed = b"\x05" + b"".join(frame_message(one + two, text_size=11)) + b"\x04"
    report = parse_astm(framed, GENERIC)
    assert [s.specimen_id for s in report.specimens] == ["S1", "S2"]
    assert [o.sequence for s in report.specimens for o in s.observations] == [0, 1]


def test_encoding_from_profile_or_argument() -> None:
    raw = "H|\\^&\rP|1||||Nông^Thị Hoa\rO|1|S1\rR|1|^^^GLU|5.5\rL|1\r".encode()
    utf8 = dataclasses.replace(GENERIC, encoding="utf-8")
    assert parse_astm(raw, utf8).specimens[0].patient_name == "Nông Thị Hoa"
    assert parse_astm(raw, GENERIC, encoding="utf-8").specimens[0].patient_name == "Nông Thị Hoa"
    with pytest.raises(MessageParseError, match="not valid ascii"):
        parse_astm(raw, GENERIC, encoding="ascii")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\x05\x04", "empty"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", "not an ASTM"),
        (b"P|1\rL|1\r", "must start with a header"),
        (b"H|\r", "not an ASTM"),
        (b"\x00\x01\x02garbage", "not an ASTM|empty"),
    ],
)
def test_garbage_raises_message_parse_error_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageParseError, match=reason):
        parse_astm(raw, GENERIC)


def test_unknown_timezone_in_profile_is_reported() -> None:
    profile = dataclasses.replace(GENERIC, extra={"timezone": "Mars/Olympus"})
    with pytest.raises(ProfileError, match="time zone"):
        parse_astm(message("H|\\^&", "L|1"), profile)


def test_parse_timestamp_formats() -> None:
    assert parse_timestamp("20260101000000") == datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
    assert parse_timestamp("202601010000", "UTC") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_timestamp("20260101", "UTC") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_timestamp("20261399") is None
    assert parse_timestamp("") is None


def test_malformed_profile_field_reference_is_a_profile_error() -> None:
    profile = dataclasses.replace(GENERIC, specimen_id_field="order three")
    with pytest.raises(ProfileError, match="field reference"):
        parse_astm(message("H|\\^&", "L|1"), profile)
