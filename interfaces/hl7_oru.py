"""HL7 v2.5.1 7.3.1 ``ORU^R01`` (unsolicited observation message) for one released report, built with hl7apy.

Structure (HL7 v2.5.1 7.3.1, ``ORU_R01``): MSH, PID, PV1, ORC, OBR, NTE, {OBX, NTE}, SPM. Field choices
(STANDARDS.md "HL7 v2 over MLLP"):

* PID-3 repeats the identifiers: CCCD citizen id (``NI``, authority ``BCA``), BHYT insurance card (``HC``,
  authority ``BHXH``) and the hospital id (``MR``); PID-5 family^given; PID-7 birth date; PID-8 sex.
* PV1-2 patient class (O/I/E), PV1-19 visit number = the visit code (MA_LK).
* ORC-2 / OBR-2 placer number (the EMR's), ORC-3 / OBR-3 filler number (the LIS's); OBR-25 F, or C for a
  correction (HL7 table 0123).
* One OBX per analyte: OBX-2 NM for a plain number else ST; OBX-3 LOINC (``LN``) with the local code as the
  alternate identifier (``L``); OBX-5 value; OBX-6 UCUM unit; OBX-7 range; OBX-8 flags (table 0078);
  OBX-11 F or C (table 0085); OBX-14 observation time; OBX-16 responsible observer (the validator).
* Result comments as NTE after their OBX; a signed PDF optionally as a last OBX of type ED (Base64).

The message is validated strictly by hl7apy (``Message.validate()``) before it is returned.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException

from interfaces.er7 import dtm, escape
from interfaces.report_data import ReportData, ReportLine

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_FLAG_CODES = {"L", "H", "LL", "HH", "<", ">", "N", "A", "AA", "U", "D", "B", "W", "S", "R", "I", "MS", "VS"}
_PDF_PLACEHOLDER = "PDFDATAPLACEHOLDER"
_PATIENT_CLASS = {"outpatient": "O", "inpatient": "I", "emergency": "E"}


class OruBuildError(ValueError):
    """The report cannot be expressed as a valid ORU^R01 (the text says which field)."""


@dataclass(frozen=True, slots=True)
class OruOptions:
    """MSH addressing (HL7 v2.5.1 2.14.9) and local conventions."""

    sending_application: str = "OPENLIS"
    sending_facility: str = ""
    receiving_application: str = "HIS"
    receiving_facility: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    processing_id: str = "P"


def _cx(value: str, authority: str, type_code: str) -> str:
    return f"{escape(value)}^^^{escape(authority)}^{type_code}"


def _name(full: str) -> str:
    parts = full.strip().split(None, 1)
    if not parts:
        return ""
    return escape(parts[0]) + ("^" + escape(parts[1]) if len(parts) > 1 else "")


_TITLES = ("BS.", "BSCKI.", "BSCKII.", "ThS.", "TS.", "PGS.", "GS.", "KTV", "CN.", "DS.")


def _xcn(user_id: str, full_name: str) -> str:
    """XCN: id^family^given^^^prefix (a Vietnamese title such as "BS." goes to XCN-6)."""
    words = full_name.split()
    prefix = []
    while words and (words[0] in _TITLES or (words[0].endswith(".") and len(words) > 2)):
        prefix.append(words.pop(0))
    name = _name(" ".join(words))
    if prefix:
        name += "^" * (4 - name.count("^")) + escape(" ".join(prefix))
    return f"{escape(user_id)}^{name}"


def _flags(raw: str) -> list[str]:
    return [f for f in re.split(r"[\s,~;]+", raw.strip()) if f in _FLAG_CODES]


def build_oru(
    report: ReportData, message_id: str, options: OruOptions, *, now: datetime, pdf: bytes | None = None
) -> bytes:
    """The ORU^R01 of ``report`` as ER7 bytes (UTF-8, segments ended by CR), strictly validated."""
    try:
        return _build(report, message_id, options, now, pdf)
    except (HL7apyException, ValueError) as exc:
        raise OruBuildError(f"cannot build ORU^R01 for order {report.filler_number}: {exc}") from exc


def _build(report: ReportData, message_id: str, o: OruOptions, now: datetime, pdf: bytes | None) -> bytes:
    tz = o.timezone
    msg = Message("ORU_R01", version="2.5.1", validation_level=VALIDATION_LEVEL.STRICT)
    msh = msg.msh
    msh.msh_3 = escape(o.sending_application)
    if o.sending_facility:
        msh.msh_4 = escape(o.sending_facility)
    if o.receiving_application:
        msh.msh_5 = escape(o.receiving_application)
    if o.receiving_facility:
        msh.msh_6 = escape(o.receiving_facility)
    msh.msh_7 = dtm(now, tz)
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = escape(message_id)
    msh.msh_11 = o.processing_id
    msh.msh_12 = "2.5.1"
    msh.msh_15 = "AL"  # accept acknowledgement: always
    msh.msh_16 = "NE"
    msh.msh_18 = "UNICODE UTF-8"

    result = msg.add_group("ORU_R01_PATIENT_RESULT")
    patient = result.add_group("ORU_R01_PATIENT")
    pid = patient.pid
    pid.pid_1 = "1"
    ids = []
    if report.national_id:
        ids.append(_cx(report.national_id, "BCA", "NI"))
    if report.insurance_number:
        ids.append(_cx(report.insurance_number, "BHXH", "HC"))
    if report.mrn:
        ids.append(_cx(report.mrn, o.receiving_facility or "HIS", "MR"))
    if not ids:
        ids.append(_cx(f"LIS{report.patient_id}", o.sending_application, "PI"))
    for i, cx in enumerate(ids):
        field = pid.pid_3 if i == 0 else pid.add_field("pid_3")
        field.value = cx
    pid.pid_5 = _name(report.patient_name) or "UNKNOWN"
    if report.birth_date:
        pid.pid_7 = report.birth_date.strftime("%Y%m%d")
    pid.pid_8 = report.sex if report.sex in ("M", "F") else "U"
    if report.address:
        pid.pid_11 = escape(report.address[:200])
    visit = patient.add_group("ORU_R01_VISIT")
    visit.pv1.pv1_2 = _PATIENT_CLASS.get(report.visit_kind or "", "O")
    if report.department:
        visit.pv1.pv1_3 = escape(report.department)
    if report.visit_code:
        visit.pv1.pv1_19 = escape(report.visit_code)

    status = "C" if report.correction else "F"
    group = result.add_group("ORU_R01_ORDER_OBSERVATION")
    orc = group.orc
    orc.orc_1 = "RE"
    if report.placer_number:
        orc.orc_2 = f"{escape(report.placer_number)}^{escape(o.receiving_application)}"
    orc.orc_3 = f"{escape(report.filler_number)}^{escape(o.sending_application)}"
    orc.orc_5 = "CM"
    if report.ordering_clinician:
        orc.orc_12 = "^" + escape(report.ordering_clinician)
    obr = group.obr
    obr.obr_1 = "1"
    if report.placer_number:
        obr.obr_2 = f"{escape(report.placer_number)}^{escape(o.receiving_application)}"
    obr.obr_3 = f"{escape(report.filler_number)}^{escape(o.sending_application)}"
    obr.obr_4 = "11502-2^Laboratory report^LN"
    collected = next((s.collected_at for s in report.specimens if s.collected_at), None)
    if collected:
        obr.obr_7 = dtm(collected, tz)
    if report.ordering_clinician:
        obr.obr_16 = "^" + escape(report.ordering_clinician)
    obr.obr_22 = dtm(report.released_at, tz)
    obr.obr_25 = status
    if report.version > 1:
        nte = group.add_segment("NTE")
        nte.nte_1 = "1"
        kind = "Correction" if report.correction else "Amended report"
        nte.nte_3 = escape(f"{kind}, version {report.version}")

    observer = ""
    if report.validator:
        observer = _xcn(report.validator, report.validator_name or report.validator)
    for index, line in enumerate(report.lines, start=1):
        _add_obx(group, index, line, status_override=None, observer=observer, tz=tz)
    if pdf is not None:
        obs = group.add_group("ORU_R01_OBSERVATION")
        obx = obs.obx
        obx.obx_1 = str(len(report.lines) + 1)
        obx.obx_2 = "ED"
        obx.obx_3 = "11502-2^Laboratory report^LN^PDF^Signed report^L"
        # hl7apy caps ED.5 (TX) at 199 characters, stricter than HL7 v2.5.1 2A.24 (no limit on ED data): the
        # segment is validated with a placeholder and the Base64 of the PDF put in its place afterwards
        obx.obx_5 = "^application^pdf^Base64^" + _PDF_PLACEHOLDER
        obx.obx_11 = status
    for index, spec in enumerate(report.specimens, start=1):
        sg = group.add_group("ORU_R01_SPECIMEN")
        sg.spm.spm_1 = str(index)
        sg.spm.spm_2 = "^" + escape(spec.barcode)
        sg.spm.spm_4 = f"{escape(spec.specimen_type)}^{escape(spec.specimen_type)}^L"
        if spec.collected_at:
            sg.spm.spm_17 = dtm(spec.collected_at, tz)
        if spec.received_at:
            sg.spm.spm_18 = dtm(spec.received_at, tz)
    msg.validate()
    text = msg.to_er7() + "\r"
    if pdf is not None:
        text = text.replace(_PDF_PLACEHOLDER, base64.b64encode(pdf).decode("ascii"), 1)
    return text.encode("utf-8")


def _add_obx(group: Message, index: int, line: ReportLine, *, status_override: str | None, observer: str,
             tz: str) -> None:
    obs = group.add_group("ORU_R01_OBSERVATION")
    obx = obs.obx
    obx.obx_1 = str(index)
    numeric = bool(_NUMBER.match(line.value.strip()))
    obx.obx_2 = "NM" if numeric else "ST"
    local = f"{escape(line.test_code)}^{escape(line.name_vi or line.test_code)}^L"
    obx.obx_3 = f"{escape(line.loinc)}^{escape(line.name_en or line.test_code)}^LN^{local}" if line.loinc else local
    if line.value:
        obx.obx_5 = line.value.strip() if numeric else escape(line.value)
    if line.units:
        obx.obx_6 = f"{escape(line.units)}^{escape(line.units)}^UCUM"
    if line.reference_range:
        obx.obx_7 = escape(line.reference_range)
    for i, flag in enumerate(_flags(line.flags)):
        field = obx.obx_8 if i == 0 else obx.add_field("obx_8")
        field.value = flag
    obx.obx_11 = status_override or ("C" if line.corrected else "F")
    if line.observed_at:
        obx.obx_14 = dtm(line.observed_at, tz)
    if observer:
        obx.obx_16 = observer
    if line.comment:
        for n, text in enumerate(line.comment.splitlines() or [line.comment], start=1):
            nte = obs.add_segment("NTE")
            nte.nte_1 = str(n)
            nte.nte_3 = escape(text[:10000])
