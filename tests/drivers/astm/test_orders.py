"""Host-query answers: order download and the "no information" reply (hand-written fixtures)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest

from drivers.astm.delimiters import RecordError
from drivers.astm.orders import OrderDescription, build_no_order_message, build_order_message, fold_to_ascii
from drivers.astm.records import OrderRecord, PatientRecord, QueryRecord, decode_message
from drivers.astm.report import parse_astm
from drivers.profile import get_profile
from lis.instrument_report import MessageKind

NOW = datetime(2026, 11, 26, 8, 30, 0)
ORDER = OrderDescription(
    specimen_id="S0001", test_codes=("WBC", "HGB"), patient_id="BN-42", patient_name="Nông Thị Hoa",
    sex="F", birth_date=date(1990, 5, 17), priority="S",
)


@pytest.mark.parametrize(
    ("text", "folded"),
    [("Nông Thị Hoa", "Nong Thi Hoa"), ("Đặng Văn Đức", "Dang Van Duc"),
     ("Nguyễn Thị Ánh Tuyết", "Nguyen Thi Anh Tuyet"), ("plain", "plain"), ("漢", "?")],
)
def test_fold_to_ascii(text: str, folded: str) -> None:
    assert fold_to_ascii(text) == folded


def test_order_download_for_sysmex_folds_names_and_uses_component_5() -> None:
    profile = get_profile("sysmex-xn")
    assert profile.fold_to_ascii
    raw = build_order_message([ORDER], profile, now=NOW)
    raw.decode("ascii")  # folded: pure ASCII
    records = decode_message(raw, profile.encoding)
    assert [r.record_type for r in records] == ["H", "P", "O", "L"]
    p, o = records[1], records[2]
    assert isinstance(p, PatientRecord) and isinstance(o, OrderRecord)
    assert p.repeats("name") == [["Nong", "Hoa", "Thi"]]
    assert (p.practice_patient_id, p.birth_date, p.sex) == ("BN-42", "19900517", "F")
    assert o.specimen_id == "S0001" and o.priority == "S" and o.action_code == "N" and o.report_type == "Q"
    assert [rep[4] for rep in o.repeats("universal_test_id")] == ["WBC", "HGB"]
    assert records[0].timestamp == "20261126083000"


def test_order_download_keeps_utf8_when_not_folding() -> None:
    profile = dataclasses.replace(get_profile("generic-astm"), encoding="utf-8", fold_to_ascii=False)
    raw = build_order_message([ORDER], profile, now=NOW)
    assert "Nông".encode() in raw
    assert [rep[3] for rep in decode_message(raw, "utf-8")[2].repeats("universal_test_id")] == ["WBC", "HGB"]


def test_order_download_refuses_names_the_encoding_cannot_carry() -> None:
    profile = dataclasses.replace(get_profile("generic-astm"), encoding="latin-1", fold_to_ascii=False)
    with pytest.raises(RecordError, match="cannot encode"):
        build_order_message([ORDER], profile, now=NOW)


def test_order_without_tests_is_refused() -> None:
    with pytest.raises(ValueError, match="no tests"):
        build_order_message([dataclasses.replace(ORDER, test_codes=())], get_profile("generic-astm"), now=NOW)


def test_the_answer_parses_back_with_our_own_parser() -> None:
    profile = get_profile("sysmex-xn")
    report = parse_astm(build_order_message([ORDER], profile, now=NOW), profile)
    assert report.kind is MessageKind.RESULTS
    assert report.specimens[0].specimen_id == "S0001"
    assert report.sender == "OPEN-LIS"
    assert report.specimens[0].patient_name == "Nong Hoa Thi"


def test_no_order_answer_order_style_uses_report_type_y() -> None:
    raw = build_no_order_message(["UNKNOWN1"], get_profile("generic-astm"), now=NOW)
    records = decode_message(raw)
    assert [r.record_type for r in records] == ["H", "P", "O", "L"]
    o = records[2]
    assert isinstance(o, OrderRecord) and o.specimen_id == "UNKNOWN1" and o.report_type == "Y"
    assert o.universal_test_id == ""


def test_no_order_answer_query_style_uses_request_status_x() -> None:
    profile = get_profile("generic-astm")
    profile = dataclasses.replace(profile, extra={**profile.extra, "no_order_reply": "query"})
    records = decode_message(build_no_order_message(["U1", "U2"], profile, now=NOW))
    assert [r.record_type for r in records] == ["H", "Q", "Q", "L"]
    q = records[1]
    assert isinstance(q, QueryRecord) and q.request_status == "X" and q.component("starting_range_id", 2) == "U1"


def test_no_order_style_must_be_known() -> None:
    profile = get_profile("generic-astm")
    profile = dataclasses.replace(profile, extra={"no_order_reply": "shrug"})
    with pytest.raises(ValueError, match="no_order_reply"):
        build_no_order_message(["U1"], profile, now=NOW)
