"""parse_hl7: analyser messages -> InstrumentReport, per profile (ORU^R01, OUL^R22, QBP^Q11, QRY^Q02)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from drivers.hl7.report import parse_hl7, person_name
from drivers.profile import get_profile
from lis.instrument_report import MessageKind, MessageParseError

Loader = Callable[[str], bytes]


def test_mindray_bc_oru_v231(load: Loader) -> None:
    report = parse_hl7(load("mindray_bc_oru_v231.hl7"), get_profile("mindray-bc"))
    assert report.kind is MessageKind.RESULTS
    assert report.message_type == "ORU^R01"
    assert report.control_id == "1052"
    assert report.sender == "Mindray/BC-5380"
    assert report.sent_at == datetime(2024, 3, 15, 2, 30, tzinfo=UTC)  # 09:30 in Ho Chi Minh City
    assert report.warnings == []
    [specimen] = report.specimens
    assert specimen.specimen_id == "24031500123"
    assert specimen.patient_id == "BN2024-0315"
    assert specimen.patient_name == "Nông Thị Hoa"
    assert specimen.patient_sex == "F"
    assert not specimen.is_qc
    # Sample information OBX (take mode, ref group, age) are comments, not results.
    assert "Take Mode: O" in specimen.comments and "Age: 38" in specimen.comments
    assert report.observation_count == 21
    wbc = specimen.observations[0]
    assert (wbc.instrument_test_code, wbc.value, wbc.units) == ("6690-2", "3.52", "10*9/L")
    assert (wbc.reference_range, wbc.abnormal_flags, wbc.result_status) == ("4.00-10.00", "L~N", "F")
    assert (wbc.loinc, wbc.mapped_test_code, wbc.unit_override) == ("6690-2", "WBC", "10*9/L")
    assert wbc.test_name == "WBC"
    # No OBX-14: the profile says the analysis time is OBR-7 (local, naive).
    assert wbc.observed_at == datetime(2024, 3, 15, 2, 25, 12, tzinfo=UTC)
    assert [o.sequence for o in specimen.observations] == list(range(21))
    hgb = next(o for o in specimen.observations if o.mapped_test_code == "HGB")
    assert (hgb.value, hgb.units) == ("118", "g/L")
    rdw_sd = next(o for o in specimen.observations if o.instrument_test_code == "21000-5")
    assert rdw_sd.mapped_test_code is None and rdw_sd.loinc == "21000-5"


def test_mindray_bc_histograms_are_attachments(load: Loader) -> None:
    [specimen] = parse_hl7(load("mindray_bc_oru_v231.hl7"), get_profile("mindray-bc")).specimens
    bmp, binary = specimen.attachments
    assert (bmp.name, bmp.media_type) == ("WBC Histogram. BMP", "image/bmp")
    assert bmp.data.startswith(b"BM") and len(bmp.data) == 70
    assert binary.media_type == "application/octet-stream"
    assert binary.data == bytes([0, 1, 3, 7, 15, 31, 63, 80, 63, 31, 15, 7, 3, 1, 0])
    assert all("Histogram" not in o.test_name for o in specimen.observations)


def test_histograms_ignored_when_the_profile_says_so(load: Loader) -> None:
    profile = replace(get_profile("mindray-bc"), histograms="ignore")
    [specimen] = parse_hl7(load("mindray_bc_oru_v231.hl7"), profile).specimens
    assert specimen.attachments == []
    assert len(specimen.observations) == 21


def test_bad_base64_is_kept_with_a_warning() -> None:
    raw = b"MSH|^~\\&|A||||20240101||ORU^R01|1|P|2.5.1\rOBR|1||S1\rOBX|1|ED|H^Hist||^Image^PNG^Base64^@@@\r"
    report = parse_hl7(raw, get_profile("generic-hl7"))
    [att] = report.specimens[0].attachments
    assert att.data == b"@@@" and att.encoding_note == "undecodable Base64"
    assert any("does not decode" in w for w in report.warnings)


def test_mindray_bs_chemistry_uses_obx4_test_name_and_obr2_barcode(load: Loader) -> None:
    report = parse_hl7(load("mindray_bs_oru_v231.hl7"), get_profile("mindray-bs"))
    [specimen] = report.specimens
    assert specimen.specimen_id == "24031500456"
    assert not specimen.is_qc
    codes = [(o.instrument_test_code, o.mapped_test_code, o.value) for o in specimen.observations]
    assert codes == [
        ("GLU", "GLU", "6.8"),
        ("ALT", "ALT", "32.5"),
        ("AST", "AST", "28"),
        ("CREA-S", "CREA", "96"),
        ("TC", "CHOL", "5.9"),
    ]
    assert specimen.observations[0].observed_at == datetime(2024, 3, 15, 3, 11, 30, tzinfo=UTC)
    assert specimen.observations[0].operator == "admin"


def test_mindray_bs_qc_message_is_qc(load: Loader) -> None:
    [specimen] = parse_hl7(load("mindray_bs_qc_v231.hl7"), get_profile("mindray-bs")).specimens
    assert specimen.is_qc
    assert specimen.specimen_id == "QC-N1"
    assert specimen.observations[0].mapped_test_code == "ALT"


def test_mindray_bs_calibration_is_not_stored(load: Loader) -> None:
    raw = load("mindray_bs_qc_v231.hl7").replace(b"||||2||ASCII", b"||||1||ASCII")
    report = parse_hl7(raw, get_profile("mindray-bs"))
    assert report.kind is MessageKind.OTHER
    assert report.specimens == []
    assert report.warnings == ["calibration results: not stored"]


def test_law_oul_r22_v251(load: Loader) -> None:
    report = parse_hl7(load("law_oul_r22_v251.hl7"), get_profile("snibe-maglumi"))
    assert report.kind is MessageKind.RESULTS
    assert report.message_type == "OUL^R22"
    assert report.control_id == "M-20240315-0001"
    assert report.sent_at == datetime(2024, 3, 15, 7, 15, tzinfo=UTC)  # explicit +0700
    patient, qc = report.specimens
    assert patient.specimen_id == "24031500789"
    assert (patient.patient_id, patient.patient_name) == ("BN2024-0099", "Lê Thành Công")
    tsh, hbsag, ft4 = patient.observations
    assert (tsh.value, tsh.units, tsh.abnormal_flags) == ("6.21", "uIU/mL", "H~A")
    assert tsh.mapped_test_code == "TSH" and tsh.unit_override == "u[IU]/mL" and tsh.loinc == "3016-3"
    assert tsh.operator == "Nguyễn Văn An"
    assert tsh.instrument_id == "MAGLUMI X8"
    assert tsh.comment == "Rerun after dilution\nchecked"
    assert tsh.observed_at == datetime(2024, 3, 15, 7, 10, tzinfo=UTC)  # naive -> Asia/Ho_Chi_Minh
    assert (hbsag.value, hbsag.abnormal_flags, hbsag.result_status) == ("NEG", "N", "F")
    assert ft4.value == "<0.5"
    assert qc.is_qc
    assert (qc.specimen_id, qc.control_material, qc.control_lot) == ("QC-TSH-L1", "CTRL-TSH", "LOT2024A")
    assert qc.patient_id == "" and qc.patient_name == ""
    assert [o.sequence for o in (*patient.observations, *qc.observations)] == [0, 1, 2, 3]


def test_ihe_law_profile_maps_loinc_and_reads_qc_level(load: Loader) -> None:
    raw = load("law_oul_r22_v251.hl7").replace(b"TSH^TSH^99SNB", b"3016-3^TSH^LN")
    patient, qc = parse_hl7(raw, get_profile("ihe-law")).specimens
    assert patient.observations[0].mapped_test_code == "TSH"
    assert qc.control_level == "Maglumi TSH Control Level 1"


def test_specimen_id_falls_back_when_the_profile_field_is_empty(load: Loader) -> None:
    raw = load("law_oul_r22_v251.hl7").replace(b"SPM|1|24031500789&LIS|", b"SPM|1||")
    report = parse_hl7(raw, get_profile("snibe-maglumi"))
    assert report.specimens[0].specimen_id == "24031500789"  # from SAC-3
    assert any("SPM.2 is empty" in w for w in report.warnings)


def test_two_obr_groups_for_the_same_specimen_are_merged() -> None:
    raw = (
        b"MSH|^~\\&|X||||20240101||ORU^R01|9|P|2.4\rPID|1||P1\r"
        b"OBR|1||S1|CBC\rOBX|1|NM|WBC||5|10*3/uL\rNTE|1||specimen lipaemic\r"
        b"OBR|2||S1|CHEM\rOBX|1|NM|GLU||5.1|mmol/L\r"
        b"OBR|3||S2|CHEM\rOBX|1|NM|GLU||7.0|mmol/L\r"
    )
    report = parse_hl7(raw, get_profile("generic-hl7"))
    assert [(s.specimen_id, len(s.observations)) for s in report.specimens] == [("S1", 2), ("S2", 1)]
    assert report.specimens[0].observations[0].comment == "specimen lipaemic"


def test_nte_before_any_obx_is_a_specimen_comment() -> None:
    raw = b"MSH|^~\\&|X||||20240101||ORU^R01|9|P|2.4\rOBR|1||S1\rNTE|1||haemolysed\rOBX|1|NM|K||6.1\r"
    [specimen] = parse_hl7(raw, get_profile("generic-hl7")).specimens
    assert specimen.comments == ["haemolysed"]


def test_vietnamese_names_in_utf8_and_in_8859_1() -> None:
    template = "MSH|^~\\&|X||||20240101||ORU^R01|1|P|2.5.1||||||{cs}\rPID|1||P1||{name}\rOBR|1||S1\rOBX|1|NM|K||4\r"
    utf8 = template.format(cs="UNICODE UTF-8", name="Nguyễn^Ánh^Thị Ngọc").encode("utf-8")
    latin = template.format(cs="8859/1", name="Lê^Công^Thành").encode("latin-1")
    profile = get_profile("generic-hl7")
    assert parse_hl7(utf8, profile).specimens[0].patient_name == "Nguyễn Thị Ngọc Ánh"
    assert parse_hl7(latin, profile).specimens[0].patient_name == "Lê Thành Công"


def test_encoding_argument_is_the_fallback_for_an_empty_msh18() -> None:
    raw = "MSH|^~\\&|X||||20240101||ORU^R01|1|P|2.3.1\rPID|1||P1||Đinh^Hùng\rOBR|1||S1\r".encode("cp1258")
    report = parse_hl7(raw, get_profile("generic-hl7"), encoding="cp1258")
    assert report.specimens[0].patient_name == "Đinh Hùng"


def test_value_types_st_tx_escapes_and_offsets(load: Loader) -> None:
    report = parse_hl7(load("generic_oru_v251_hash.hl7"), get_profile("generic-hl7"))
    [specimen] = report.specimens
    st, tx, nm = specimen.observations
    assert st.value == "value with # and $ and @ and * and \\ done"
    assert st.abnormal_flags == "H~HH"
    assert tx.value == "line1\nline2A"
    assert nm.loinc == "1988-5"
    assert nm.observed_at == datetime(2024, 3, 15, 11, 59, tzinfo=UTC)  # +0000 given


def test_bad_obx_time_is_a_warning_not_an_error() -> None:
    raw = b"MSH|^~\\&|X||||20240101||ORU^R01|1|P|2.5.1\rOBR|1||S1\rOBX|1|NM|K||4||||||F|||2024XX\r"
    report = parse_hl7(raw, get_profile("generic-hl7"))
    assert report.specimens[0].observations[0].observed_at is None
    assert report.warnings == ["OBX 1: bad OBX-14 time '2024XX'"]


def test_qbp_q11_is_a_host_query(load: Loader) -> None:
    report = parse_hl7(load("law_qbp_q11_v251.hl7"), get_profile("ihe-law"))
    assert report.kind is MessageKind.QUERY
    assert report.message_type == "QBP^Q11"
    [query] = report.queries
    assert query.specimen_ids == ["24031500789"]
    assert query.query_id == "Q-TAG-0001"
    assert not query.all_pending


def test_qry_q02_is_a_host_query(load: Loader) -> None:
    report = parse_hl7(load("mindray_bs_qry_q02.hl7"), get_profile("mindray-bs"))
    assert report.kind is MessageKind.QUERY
    assert report.queries[0].specimen_ids == ["24031500456"]
    assert report.queries[0].query_id == "15"


def test_qry_without_specimen_asks_for_all_pending(load: Loader) -> None:
    raw = load("mindray_bs_qry_q02.hl7").replace(b"|RD|24031500456|", b"|RD||")
    [query] = parse_hl7(raw, get_profile("mindray-bs")).queries
    assert query.all_pending and query.specimen_ids == []


def test_other_message_types_are_other_with_a_warning() -> None:
    raw = b"MSH|^~\\&|X||||20240101||ADT^A01|1|P|2.5.1\rPID|1\r"
    report = parse_hl7(raw, get_profile("generic-hl7"))
    assert report.kind is MessageKind.OTHER
    assert report.warnings == ["message type ADT^A01 carries nothing to store"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"H|\\^&|||cobas\rL|1|N\r", "no MSH segment"),
        (b"MSH1A\r", "bad field separator"),
        (b"", "empty message"),
    ],
)
def test_non_hl7_input_raises_message_parse_error(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageParseError, match=f"not an HL7 v2 message: .*{reason}"):
        parse_hl7(raw, get_profile("generic-hl7"))


def test_query_without_its_segment_is_refused() -> None:
    with pytest.raises(MessageParseError, match="without a QPD"):
        parse_hl7(b"MSH|^~\\&|X||||20240101||QBP^Q11|1|P|2.5.1\r", get_profile("ihe-law"))


def test_person_name_order() -> None:
    assert person_name(["Nông", "Hoa", "Thị"]) == "Nông Thị Hoa"
    assert person_name(["", "Nguyen Van A"]) == "Nguyen Van A"
    assert person_name([]) == ""


def test_large_message_with_base64_histogram_is_parsed() -> None:
    blob = base64.b64encode(bytes(range(256)) * 200)
    raw = b"MSH|^~\\&|X||||20240101||ORU^R01|1|P|2.5.1\rOBR|1||S1\rOBX|1|ED|H^Hist||^Image^PNG^Base64^" + blob
    [att] = parse_hl7(raw + b"\r", get_profile("generic-hl7")).specimens[0].attachments
    assert att.data == bytes(range(256)) * 200 and att.media_type == "image/png"


def test_obx_without_obr_is_kept() -> None:
    raw = b"MSH|^~\\&|X||||20240101||ORU^R01|1|P|2.3.1\rPID|1||P1\rOBX|1|NM|GLU||5.5|mmol/L\r"
    report = parse_hl7(raw, get_profile("generic-hl7"))
    assert report.kind is MessageKind.RESULTS
    assert report.specimens[0].observations[0].value == "5.5"
    assert "a specimen group has no specimen id" in report.warnings


def test_fallback_never_borrows_the_specimen_id_of_another_group() -> None:
    raw = (
        b"MSH|^~\\&|X||||20240101||OUL^R22|1|P|2.5.1\r"
        b"SPM|1|S-A&LIS\rOBR|1\rOBX|1|NM|K||4\r"
        b"SPM|2|\rOBR|1\rOBX|1|NM|K||5\r"
    )
    first, second = parse_hl7(raw, get_profile("ihe-law")).specimens
    assert (first.specimen_id, second.specimen_id) == ("S-A", "")
