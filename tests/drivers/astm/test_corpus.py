"""Every real analyser capture of the shared corpus parses into the expected report (golden values).

The captures are third-party data: they are read from ../shared/corpus/astm and never copied into the
repository; the tests skip when the corpus is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.astm.framing import deframe, is_framed, iter_frames
from drivers.astm.link import AstmLink, MessageReceived, Transmit
from drivers.astm.records import decode_message, encode_message
from drivers.astm.report import parse_astm
from drivers.profile import get_profile
from lis.instrument_report import MessageKind

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "astm"


@dataclass(frozen=True)
class Golden:
    profile: str
    record_types: str  # record type letters, in order
    specimens: tuple[str, ...]
    observations: int
    # (specimen index, observation index within it, code, value, flags, mapped LIS code)
    samples: tuple[tuple[int, int, str, str, str, str | None], ...] = ()
    kind: MessageKind = MessageKind.RESULTS
    sender: str = ""
    qc: bool = False
    attachments: int = 0
    queries: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


EUROIMMUN_IDS = (
    *(f"TEST-27-{n}-5-1" for n in ("079", "077", "062", "019", "071", "015", "065", "074", "027", "086", "081",
                                   "070", "011", "037")),
    "TEST-27-026-5-1  57",  # sent like that (P-4 with trailing text); kept, stripped of outer blanks
    *(f"TEST-27-{n}-5-1" for n in ("089", "014", "073", "110", "031")),
)

GOLDEN: dict[str, Golden] = {
    "abbott_afinion2.astm": Golden(
        "abbott-afinion2", "HPORL", ("5",), 1, ((0, 0, "HbA1c", "5.9", "", "HBA1C"),),
        sender="Afinion 2 Analyzer^^AF20052397"),
    "abbott_architect.astm": Golden(
        "abbott-architect", "HPORRRL" * 3 + "HPORRL" + "HPORRRL",
        ("276056250158121", "70225954624I", "AA5XVA2BT9", "AA5XVA2BT9", "CL5X1A30VH"), 14,
        ((0, 0, "580^F", "0.15", "", None), (0, 1, "580^I", "Nonreactive", "", None),
         (3, 0, "133^F", "2.87", "", None), (4, 2, "281^P", "1006", "", None)),
        sender="ARCHITECT^9.45^F3452430028^H1P1O1R1C1Q1L1"),
    "biorad_ih1000_ihcom.astm": Golden(
        "biorad-ih1000", "HPORCRCRCRCL", ("1122206642",), 4,
        ((0, 0, "AntiA", "40", "", None), (0, 3, "Result", "A^NEG^NEG^ccee^K-^NEG", "", None)),
        sender="Bio-Rad"),
    "cepheid_genexpert.astm": Golden(
        "cepheid-genexpert", "HPOR" + "C" + "R" * 19 + "C" + "R" * 19 + "C" + "R" * 45 + "L",
        ("PR25A137",), 84,
        ((0, 0, "MTB", "NOT DETECTED", "", "MTB"), (0, 2, "rpoB1^Ct", "0.0", "", None),
         (0, 38, "RIF Resistance", "", "", "RIF")),
        sender=".806149 Happy Hospital^GeneXpert^4.8"),
    "erba_xl_series.astm": Golden(
        "erba-xl", "HPORCL", ("1044041",), 1, ((0, 0, "DBILL", "0.3", "A", "DBIL"),)),
    "euroimmun_analyzer1.astm": Golden(
        "euroimmun-analyzer1", "H" + "POR" * 20 + "L", EUROIMMUN_IDS, 20,
        ((0, 0, "SARSCOV2IGA", ">8", "", None), (1, 0, "SARSCOV2IGA", "7,41", "", None))),
    "horiba_pentra_xlr.astm": Golden(
        "horiba-pentra", "HPORCCRRRRRRRRRRRRRRRRRRCRRL", ("S1234",), 21,
        ((0, 0, "WBC", "8.5", "", "WBC"), (0, 3, "MON#", "0.15", "L", "MONO#"),
         (0, 9, "BAS#", "-----", "HH", "BASO#"), (0, 18, "PLT", "234", "", "PLT")),
        sender="ABX"),
    "horiba_yumizen_h500.astm": Golden(
        "horiba-yumizen-h500", "HPOCCMMMM" + "R" * 21 + "L", ("PX440N",), 21,
        ((0, 0, "MCV", "90.6", "N", "MCV"), (0, 7, "PLT", "308", "N", "PLT"),
         (0, 8, "WBC", "8.30", "N", "WBC")),
        sender="H500^910YOXH02826^2.2.2.2b", qc=True, attachments=4),
    "horiba_yumizen_h500_b.astm": Golden(
        "horiba-yumizen-h500", "HPOCMMMM" + "R" * 27 + "L", ("2021679",), 27,
        ((0, 0, "PCT", "0.13", "L", None), (0, 2, "MCV", "79.3", "N", "MCV")),
        sender="H500^906YOXH02459^2.2.0.5", attachments=4),
    "horiba_yumizen_h550.astm": Golden(
        "horiba-yumizen-h550", "HPOMMM" + "R" * 20 + "L", ("PX449L",), 20,
        ((0, 7, "PLT", "67", "N", "PLT"), (0, 11, "HGB", "6.0", "N", "HGB")),
        sender="H550^909YAXH02732^1.2.1.4", qc=True, attachments=3),
    "immucor_galileo_echo_order.astm": Golden(
        "immucor-galileo", "HPOCL", ("0651439A",), 0, sender="LIS"),
    "immucor_galileo_echo_result.astm": Golden(
        "immucor-galileo", "HPO" + "R" * 9 + "O" + "R" * 5 + "L", ("0651439A", "0651439A"), 14,
        ((0, 2, "Anti-B", "3+^3+^45", "", None), (0, 8, "ABOD Full Interp", "B Pos", "", None),
         (1, 4, "Screen Interp", "Pos", "", None)),
        sender="Echo"),
    "ortho_vitros_3600.astm": Golden(
        "ortho-vitros", "HPORRRL", ("44444411",), 3,
        ((0, 0, "1.0000+950+1.0", "51", "", None), (0, 2, "1.0000+952+1.0", "56", "", None)),
        sender="3600796"),
    "ortho_vitros_3600_query.astm": Golden(
        "ortho-vitros", "HQL", (), 0, kind=MessageKind.QUERY, sender="3600796", queries=("1068687",)),
    "roche_cobas_c111.astm": Golden(
        "roche-cobas-c111", "HPORCML", ("T20 10134GA D28",), 1, ((0, 0, "413", "40.13", "N", None),),
        sender="SENAITE^Roche^c111^4.2.2.1730^1^13147", attachments=1),
    "roche_cobas_c311.astm": Golden(
        "roche-cobas-c311", "HPOR" + "CR" * 6 + "CL", ("CL-PL-24-0370",), 7,
        ((0, 0, "685/", "22.4", "A", None), (0, 2, "712/", "4.1", "L", None),
         (0, 5, "717/", "5.85", "N", None)),
        sender="c311^1"),
    "siemens_dca_vantage.astm": Golden(
        "siemens-dca-vantage", "HPORCRCRL", ("660",), 3,
        ((0, 0, "Alb", "63.7", "", "UALB"), (0, 1, "Crt", "230.8", "", "UCREA"),
         (0, 2, "Ratio", "27.6", "", "ACR")),
        sender="DCA VANTAGE^04.04.00.00^S067337"),
    "sysmex_xn550.astm": Golden(
        "sysmex-xn", "HPCOC" + "R" * 41 + "CL", ("27",), 41,
        ((0, 0, "WBC", "8.13", "N", "WBC"), (0, 3, "HCT", "22.7", "L", "HCT"),
         (0, 11, "EO%", "22.1", "H", "EO%"), (0, 23, "Eosinophilia", "", "A", None),
         (0, 37, "SCAT_WDF", "PNG\\20240628\\2024_06_27_13_54_27_WDF.PNG", "N", None)),
        sender="XN-550^00-24^22723^^^^BD634545"),
    "sysmex_xp100.astm": Golden(
        "sysmex-xp", "HPO" + "R" * 20 + "L", ("113",), 20,
        ((0, 0, "WBC", "  5.5", "N", "WBC"), (0, 6, "MCHC", " 41.7", "H", "MCHC"),
         (0, 8, "LYM%", " 26.4", "N", "LYMPH%")),
        sender="XP-100^00-13^^^^A7869^BS649542"),
}


def _capture(name: str) -> bytes:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus capture {path} not available")
    return path.read_bytes()


def test_golden_table_covers_every_capture() -> None:
    if not CORPUS.is_dir():
        pytest.skip("corpus not available")
    assert sorted(p.name for p in CORPUS.glob("*.astm")) == sorted(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_capture_decodes_into_the_expected_records(name: str) -> None:
    golden = GOLDEN[name]
    raw = _capture(name)
    encoding = get_profile(golden.profile).encoding
    records = decode_message(raw, encoding)
    assert "".join(r.record_type for r in records) == golden.record_types
    if name != "horiba_yumizen_h550.astm":  # that capture's header has the doubled-delimiter quirk
        assert encode_message(records, encoding=encoding) == deframe(raw), "codec must round-trip"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_capture_parses_into_the_expected_report(name: str) -> None:
    golden = GOLDEN[name]
    report = parse_astm(_capture(name), get_profile(golden.profile))
    assert report.kind is golden.kind
    assert report.sender == golden.sender
    assert tuple(s.specimen_id for s in report.specimens) == golden.specimens
    assert report.observation_count == golden.observations
    assert [o.sequence for s in report.specimens for o in s.observations] == list(range(golden.observations))
    for spec_i, obs_i, code, value, flags, mapped in golden.samples:
        obs = report.specimens[spec_i].observations[obs_i]
        assert (obs.instrument_test_code, obs.value, obs.abnormal_flags, obs.mapped_test_code) == (
            code, value, flags, mapped)
    assert all(s.is_qc == golden.qc for s in report.specimens)
    assert sum(len(s.attachments) for s in report.specimens) == golden.attachments
    assert [i for q in report.queries for i in q.specimen_ids] == list(golden.queries)


def test_sysmex_xn_details() -> None:
    report = parse_astm(_capture("sysmex_xn550.astm"), get_profile("sysmex-xn"))
    spec = report.specimens[0]
    assert spec.patient_name == "Jim Brown" and spec.patient_sex == "M" and spec.patient_birth_date == "19870626"
    assert spec.comments == ["POST HD"]
    hgb = spec.observations[2]
    assert (hgb.units, hgb.loinc, hgb.unit_override, hgb.result_status) == ("g/dL", "718-7", "g/dL", "F")
    # 2024-06-27 13:54:07 in Asia/Ho_Chi_Minh (UTC+7) is 06:54:07 UTC
    assert hgb.observed_at == datetime(2024, 6, 27, 6, 54, 7, tzinfo=UTC)


def test_horiba_qc_material_lot_and_histograms() -> None:
    report = parse_astm(_capture("horiba_yumizen_h500.astm"), get_profile("horiba-yumizen-h500"))
    spec = report.specimens[0]
    assert spec.is_qc and spec.control_material == "CTRL MEDIUM" and spec.control_lot == "PX440N"
    assert spec.comments == ["CONTROL_FAILED^^PLT_ABOVE_TOLERANCE", "ABXdifftrol N"]
    names = [a.name for a in spec.attachments]
    assert names[:3] == ["HISTOGRAM/RBC/PLT/RbcAlongRes", "HISTOGRAM/RBC/PLT/PltAlongRes", "MATRIX/LMNE/LMNEResAbs"]
    assert spec.attachments[0].data.startswith(b"M|1|HISTOGRAM|RBC/PLT|RbcAlongRes|FLOATLE-stream/deflate:base64^")
    mcv = spec.observations[0]
    assert (mcv.reference_range, mcv.operator, mcv.loinc, mcv.unit_override) == ("84.0 - 94.0", "MATYL", "787-2", "fL")
    assert mcv.observed_at == datetime(2023, 3, 29, 4, 6, 31, tzinfo=UTC)  # from R-12


def test_histograms_ignored_when_the_profile_says_so() -> None:
    import dataclasses

    profile = dataclasses.replace(get_profile("horiba-yumizen-h500"), histograms="ignore")
    report = parse_astm(_capture("horiba_yumizen_h500.astm"), profile)
    assert not report.specimens[0].attachments


def test_pentra_comments_attach_to_the_preceding_result() -> None:
    report = parse_astm(_capture("horiba_pentra_xlr.astm"), get_profile("horiba-pentra"))
    wbc = report.specimens[0].observations[0]
    assert wbc.comment == "Alarm_WBC^LMNE-^BASO+^LL^NL^LN^NO^SL1; LARGE IMMATURE CELL^NRBCs"
    assert wbc.loinc == "6690-2"  # the profile's LOINC wins over the 804-5 the Pentra sends


def test_erba_uses_its_backtick_repeat_delimiter_and_genexpert_its_escape() -> None:
    erba = decode_message(_capture("erba_xl_series.astm"))
    assert erba[0].delimiters.repeat == "`"
    gx = decode_message(_capture("cepheid_genexpert.astm"), "utf-8")
    assert (gx[0].delimiters.repeat, gx[0].delimiters.escape) == ("@", "\\")


def test_pentra_frame_numbers_wrap_and_checksums_verify() -> None:
    frames = list(iter_frames(_capture("horiba_pentra_xlr.astm")))
    assert [f.number for f in frames[:10]] == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2]
    assert all(f.checksum_ok for f in frames)


@pytest.mark.parametrize("name", ["horiba_yumizen_h500_b.astm", "ortho_vitros_3600.astm", "horiba_pentra_xlr.astm",
                                  "roche_cobas_c111.astm"])
def test_raw_wire_captures_pass_through_the_link_layer(name: str) -> None:
    """Captures that are genuine wire bytes replay through the receiver unchanged (ENQ added if absent)."""
    raw = _capture(name)
    assert is_framed(raw)
    wire = raw if raw.startswith(b"\x05") else b"\x05" + raw
    if not wire.rstrip(b"\r\n").endswith(b"\x04"):
        wire += b"\x04"
    link = AstmLink()
    messages: list[MessageReceived] = []
    replies = b""
    for i in range(0, len(wire), 100):
        out = link.receive(wire[i : i + 100], 0)
        while True:
            replies += b"".join(e.data for e in out if isinstance(e, Transmit))
            held = [e for e in out if isinstance(e, MessageReceived)]
            messages += held
            if not held:
                break
            out = link.acknowledge(0)
    assert b"\x15" not in replies, "no frame of a real capture may be NAKed"
    assert len(messages) == 1
    assert messages[0].records_text.replace(b"\r\n", b"\r") == deframe(raw)
    assert deframe(messages[0].raw) == deframe(raw)
