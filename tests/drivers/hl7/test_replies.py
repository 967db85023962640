"""Host-query answers and order download: RSP^K11, OML^O33 (IHE LAW), QCK^Q02 + DSR^Q03 (Mindray)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import hl7 as python_hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as apy_parse
from hl7apy.parser import parse_segment as apy_parse_segment

from drivers.hl7.builder import fold_to_ascii, has_structure
from drivers.hl7.message import parse_message
from drivers.hl7.replies import (
    OrderDescription,
    build_dsr_q03,
    build_oml_o33,
    build_qck_q02,
    build_rsp_k11,
    split_name,
)
from drivers.hl7.report import parse_hl7, person_name
from drivers.profile import get_profile

Loader = Callable[[str], bytes]
NOW = datetime(2024, 3, 15, 3, 0, tzinfo=UTC)
ORDER = OrderDescription(
    specimen_id="24031500789",
    test_codes=("TSH", "FT4"),
    patient_id="BN2024-0099",
    patient_name="Nguyễn Thị Ngọc Ánh",
    sex="F",
    birth_date=date(1990, 2, 28),
    priority="S",
    collected_at=datetime(2024, 3, 15, 1, 30, tzinfo=UTC),
)


def strictly_valid(raw: bytes, codec: str = "utf-8") -> str:
    text = raw.decode(codec)
    msg = apy_parse(text.rstrip("\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert msg.validate() is True
    python_hl7.parse(text)
    return text


def test_rsp_k11_answers_the_qbp(load: Loader) -> None:
    query = load("law_qbp_q11_v251.hl7")
    for found, status in ((True, "OK"), (False, "NF")):
        rsp = build_rsp_k11(query, found, now=NOW, control_id="R1")
        strictly_valid(rsp)
        msg = parse_message(rsp)
        assert msg.msh.field(9) == "RSP^K11^RSP_K11"
        assert msg.msh.value(12) == "2.5.1"
        assert msg.get("MSA.1") == "AA" and msg.get("MSA.2") == "Q-0001"
        assert msg.get("QAK.1") == "Q-TAG-0001" and msg.get("QAK.2") == status
        assert msg.segment("QPD").field(3) == "24031500789"  # type: ignore[union-attr]
        assert msg.get("QPD.1") == "WOS"


def segments_strictly_valid(raw: bytes, version: str = "2.5.1") -> str:
    """Every segment re-parses strictly (data types, lengths); the structure was validated when built.

    hl7apy's group finder cannot re-read an OML^O33 with several ORC groups (it takes the second ORC for
    a prior-result ORDER_PRIOR), so the whole-message re-parse is checked on a one-test order.
    """
    text = raw.decode("utf-8")
    for line in text.rstrip("\r").split("\r")[1:]:
        apy_parse_segment(line, version=version, validation_level=VALIDATION_LEVEL.STRICT).validate()
    python_hl7.parse(text)
    return text


def test_oml_o33_single_test_revalidates_as_a_whole() -> None:
    order = OrderDescription("S1", ("TSH",), patient_name="Lê Thành Công")
    strictly_valid(build_oml_o33(order, now=NOW))


def test_oml_o33_carries_the_order_and_vietnamese_round_trips() -> None:
    raw = build_oml_o33(ORDER, now=NOW, control_id="O1", receiving=("MAGLUMI X8", "SNIBE"))
    text = segments_strictly_valid(raw)
    msg = parse_message(raw)
    assert msg.msh.field(9) == "OML^O33^OML_O33"
    assert msg.msh.value(18) == "UNICODE UTF-8"
    assert msg.msh.field(5) == "MAGLUMI X8"
    assert person_name(msg.segment("PID").components(5)) == "Nguyễn Thị Ngọc Ánh"  # type: ignore[union-attr]
    assert msg.get("PID.7") == "19900228" and msg.get("PID.8") == "F"
    assert msg.get("SPM.2.1.1") == "24031500789" and msg.get("SPM.11") == "P"
    assert msg.get("SPM.17") == "20240315083000+0700"
    assert msg.get("SAC.3") == "24031500789"
    assert [s.value(4) for s in msg.segments("OBR")] == ["TSH", "FT4"]
    assert [s.value(1) for s in msg.segments("ORC")] == ["NW", "NW"]
    assert [s.value(9) for s in msg.segments("TQ1")] == ["S", "S"]
    assert [s.name for s in msg][:5] == ["MSH", "PID", "SPM", "SAC", "ORC"]
    theirs = python_hl7.parse(text)
    assert theirs.extract_field("PID", 1, 5, 1, 1) == "Nguyễn"


def test_oml_o33_in_ascii_folds_names() -> None:
    raw = build_oml_o33(ORDER, charset="ASCII", now=NOW)
    raw.decode("ascii")
    assert parse_message(raw).get("PID.5.1") == "Nguyen"


def test_oml_o33_needs_tests() -> None:
    with pytest.raises(ValueError):
        build_oml_o33(OrderDescription("S1"))


def test_oml_o33_escapes_delimiters_in_text() -> None:
    order = OrderDescription("S|1", ("A^B",), patient_name="O'Neil & Co")
    msg = parse_message(build_oml_o33(order, now=NOW))
    assert msg.get("SAC.3") == "S|1"
    assert msg.get("OBR.4") == "A^B"
    assert person_name(msg.segment("PID").components(5)) == "O'Neil & Co"  # type: ignore[union-attr]


def test_qck_q02(load: Loader) -> None:
    query = load("mindray_bs_qry_q02.hl7")
    for found, status in ((True, "OK"), (False, "NF")):
        raw = build_qck_q02(query, found, now=NOW, control_id="K1")
        strictly_valid(raw, "ascii")
        msg = parse_message(raw)
        assert msg.msh.field(9) == "QCK^Q02^QCK_Q02"
        assert msg.msh.value(12) == "2.3.1" and msg.msh.value(18) == "ASCII"
        assert msg.get("MSA.2") == "15" and msg.get("QAK.2") == status


def test_dsr_q03_mindray_order_download(load: Loader) -> None:
    query = load("mindray_bs_qry_q02.hl7")
    raw = build_dsr_q03(query, ORDER, now=NOW, control_id="D1")
    text = raw.decode("ascii")  # MSH-18 ASCII: names folded
    msg = parse_message(raw)
    assert msg.msh.field(9) == "DSR^Q03^DSR_Q03"
    assert msg.get("MSA.2") == "15" and msg.get("QAK.2") == "OK"
    assert msg.segment("QRD").field(8) == "24031500456"  # type: ignore[union-attr]
    assert msg.segment("QRF").field(1) == "BS-380"  # type: ignore[union-attr]
    dsp = {s.value(1): s.field(3) for s in msg.segments("DSP")}
    assert dsp["1"] == "BN2024-0099"
    assert dsp["3"] == "Nguyen Thi Ngoc Anh"
    assert dsp["4"] == "19900228000000"
    assert dsp["21"] == "24031500789"
    assert dsp["23"] == "20240315083000"
    assert dsp["24"] == "Y"
    assert dsp["29"] == "TSH^^^" and dsp["30"] == "FT4^^^"
    python_hl7.parse(text)
    # The analyser's QRD/QRF are echoed byte for byte (validated as a normalised copy when built).
    query_segments = query.decode("ascii").split("\r")
    assert msg.segment("QRD").raw == query_segments[1]  # type: ignore[union-attr]
    assert msg.segment("QRF").raw == query_segments[2]  # type: ignore[union-attr]


def test_dsr_q03_keeps_utf8_for_a_unicode_analyser(load: Loader) -> None:
    query = load("mindray_bs_qry_q02.hl7").replace(b"||ASCII|||", b"||UNICODE|||")
    msg = parse_message(build_dsr_q03(query, ORDER, now=NOW))
    assert {s.value(1): s.field(3) for s in msg.segments("DSP")}["3"] == "Nguyễn Thị Ngọc Ánh"


def test_dsr_answer_is_read_back_as_the_query_specimen(load: Loader) -> None:
    """The query the LIS answers is the one parse_hl7 reported."""
    query = load("mindray_bs_qry_q02.hl7")
    [host_query] = parse_hl7(query, get_profile("mindray-bs")).queries
    order = OrderDescription(host_query.specimen_ids[0], ("GLU",))
    dsp = {s.value(1): s.field(3) for s in parse_message(build_dsr_q03(query, order)).segments("DSP")}
    assert dsp["21"] == "24031500456"


def test_split_name_and_fold() -> None:
    assert split_name("Nông Thị Hoa") == ("Nông", "Hoa", "Thị")
    assert split_name("Hoa") == ("Hoa", "", "")
    assert split_name("  ") == ("", "", "")
    assert fold_to_ascii("Đặng Thị Ánh Nguyệt") == "Dang Thi Anh Nguyet"


def test_hl7apy_has_the_structures_we_build() -> None:
    assert has_structure("RSP_K11", "2.5.1") and has_structure("OML_O33", "2.5.1")
    assert has_structure("QCK_Q02", "2.3.1") and has_structure("DSR_Q03", "2.3.1")
    assert not has_structure("OML_O33", "2.3.1")
