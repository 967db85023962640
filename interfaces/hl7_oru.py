"""HL7 v2.5.1 7.3.1 ``ORU^R01`` (unsolicited observation message) for one released report, validated with hl7apy.

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

Two builders write the same bytes:

* :func:`build_oru_hl7apy` builds the message with hl7apy in STRICT mode and runs ``Message.validate()``
  (structure, cardinality and datatypes of HL7 v2.5.1 ``ORU_R01``): about 40 ms of CPU for 5 OBX, 90 ms for 20.
* :func:`build_oru` assembles the ER7 text with string operations (:mod:`interfaces.er7_fast`): 0.5 ms for 5 OBX,
  1.2 ms for 20 (``bench/oru_build.py``).
  The first message of each *shape* (segments, assigned fields, repetitions and present components, OBX-2 value
  types) is also built and validated by hl7apy and the two outputs compared byte for byte; later messages of a
  shape that matched are checked only for the value rules hl7apy applies per leaf (ST 199 / IS 20 characters,
  SI and NM numbers, DTM format: see :mod:`interfaces.er7_fast`), which raise :class:`OruBuildError` naming the
  field. A shape whose outputs differed (a fast-path bug) is logged and always built by hl7apy from then on.
  Shapes are remembered per process in a bounded LRU (:data:`SHAPE_CACHE_SIZE`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException

from interfaces.er7 import dtm, escape
from interfaces.er7_fast import Segment, ValueRuleError, render
from interfaces.report_data import ReportData, ReportLine

log = logging.getLogger(__name__)

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
    """The ORU^R01 of ``report`` as ER7 bytes (UTF-8, segments ended by CR), a valid HL7 v2.5.1 ``ORU_R01``.

    Fast path with hl7apy validation once per shape (module docstring); same bytes as :func:`build_oru_hl7apy`.
    """
    fast, shape = _fast(report, message_id, options, now, pdf)
    key = _shapes.key(shape)
    verdict = _shapes.get(key)
    if verdict is _Verdict.IDENTICAL:
        return fast
    reference = build_oru_hl7apy(report, message_id, options, now=now, pdf=pdf)
    if verdict is None:
        identical = reference == fast
        _shapes.put(key, _Verdict.IDENTICAL if identical else _Verdict.DIFFERENT)
        if not identical:
            log.warning("ORU^R01 fast path differs from hl7apy for order %s (%s); this shape is built by hl7apy "
                        "from now on", report.filler_number, _first_difference(reference, fast))
    return reference


def build_oru_fast(
    report: ReportData, message_id: str, options: OruOptions, *, now: datetime, pdf: bytes | None = None
) -> bytes:
    """The ORU^R01 from the fast path alone, checked only for hl7apy's value rules (no shape validation)."""
    return _fast(report, message_id, options, now, pdf)[0]


def _fast(report: ReportData, message_id: str, o: OruOptions, now: datetime, pdf: bytes | None) -> tuple[bytes, str]:
    """ER7 bytes and shape key of the message (:mod:`interfaces.er7_fast`); :class:`OruBuildError` on a bad value."""
    try:
        text, shape = render(_segments(report, message_id, o, now, with_pdf=pdf is not None), _STRUCTURAL)
    except ValueRuleError as exc:
        raise OruBuildError(f"cannot build ORU^R01 for order {report.filler_number}: {exc}") from exc
    if pdf is not None:
        # as in _build: the Base64 goes in after the checks (hl7apy caps the ED data component at 199 characters)
        text = text.replace(_PDF_PLACEHOLDER, base64.b64encode(pdf).decode("ascii"), 1)
    return text.encode("utf-8"), shape


def build_oru_hl7apy(
    report: ReportData, message_id: str, options: OruOptions, *, now: datetime, pdf: bytes | None = None
) -> bytes:
    """The ORU^R01 built with hl7apy in STRICT mode and validated with ``Message.validate()`` (the reference)."""
    try:
        return _build(report, message_id, options, now, pdf)
    except (HL7apyException, ValueError) as exc:
        raise OruBuildError(f"cannot build ORU^R01 for order {report.filler_number}: {exc}") from exc


class _Verdict(Enum):
    IDENTICAL = "identical"  # hl7apy validated the shape and wrote the same bytes as the fast path
    DIFFERENT = "different"  # the outputs differed: hl7apy builds every message of this shape


class ShapeCache:
    """Verdicts per message shape, least recently used first out beyond ``size`` (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._verdicts: OrderedDict[bytes, _Verdict] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(shape: str) -> bytes:
        """A 128-bit digest of a shape (a 20-OBX shape is ~2 kB of text; the digest keeps the cache small)."""
        return hashlib.blake2b(shape.encode("utf-8"), digest_size=16).digest()

    def get(self, shape: bytes) -> _Verdict | None:
        with self._lock:
            verdict = self._verdicts.get(shape)
            if verdict is not None:
                self._verdicts.move_to_end(shape)
            return verdict

    def put(self, shape: bytes, verdict: _Verdict) -> None:
        with self._lock:
            self._verdicts[shape] = verdict
            self._verdicts.move_to_end(shape)
            while len(self._verdicts) > self.size:
                self._verdicts.popitem(last=False)

    def counts(self) -> dict[str, int]:
        """How many remembered shapes have each verdict."""
        with self._lock:
            return {v.value: sum(1 for x in self._verdicts.values() if x is v) for v in _Verdict}

    def clear(self) -> None:
        with self._lock:
            self._verdicts.clear()


SHAPE_CACHE_SIZE = 4096
_shapes = ShapeCache(SHAPE_CACHE_SIZE)
_STRUCTURAL = frozenset({("OBX", 2)})  # OBX-2 decides the datatype of OBX-5 (HL7 v2.5.1 7.4.2.2)


def shape_cache() -> ShapeCache:
    """This process's cache of validated shapes (for tests and benchmarks)."""
    return _shapes


def _first_difference(reference: bytes, fast: bytes) -> str:
    ref_lines, fast_lines = reference.split(b"\r"), fast.split(b"\r")
    for ref_line, fast_line in zip(ref_lines, fast_lines, strict=False):
        if ref_line != fast_line:
            return f"hl7apy {ref_line[:120]!r} / fast {fast_line[:120]!r}"
    return f"hl7apy {len(ref_lines)} segments / fast {len(fast_lines)}"


# -- the fast path: the same fields as plain ER7 strings (interfaces.er7_fast) -------------------------------------
def _segments(report: ReportData, message_id: str, o: OruOptions, now: datetime, *, with_pdf: bool) -> list[Segment]:
    """The segments of the message as :func:`_build` assigns them, field for field (ER7-escaped strings)."""
    tz = o.timezone
    msh = Segment("MSH")
    msh[3] = escape(o.sending_application)
    if o.sending_facility:
        msh[4] = escape(o.sending_facility)
    if o.receiving_application:
        msh[5] = escape(o.receiving_application)
    if o.receiving_facility:
        msh[6] = escape(o.receiving_facility)
    msh[7] = dtm(now, tz)
    msh[9] = "ORU^R01^ORU_R01"
    msh[10] = escape(message_id)
    msh[11] = o.processing_id
    msh[12] = "2.5.1"
    msh[15] = "AL"
    msh[16] = "NE"
    msh[18] = "UNICODE UTF-8"
    segments = [msh, _pid(report, o), _pv1(report)]
    segments += _order(report, o, tz, with_pdf)
    return segments


def _identifiers(report: ReportData, o: OruOptions) -> list[str]:
    ids = []
    if report.national_id:
        ids.append(_cx(report.national_id, "BCA", "NI"))
    if report.insurance_number:
        ids.append(_cx(report.insurance_number, "BHXH", "HC"))
    if report.mrn:
        ids.append(_cx(report.mrn, o.receiving_facility or "HIS", "MR"))
    if not ids:
        ids.append(_cx(f"LIS{report.patient_id}", o.sending_application, "PI"))
    return ids


def _pid(report: ReportData, o: OruOptions) -> Segment:
    pid = Segment("PID")
    pid[1] = "1"
    for cx in _identifiers(report, o):
        pid.add(3, cx)
    pid[5] = _name(report.patient_name) or "UNKNOWN"
    if report.birth_date:
        pid[7] = report.birth_date.strftime("%Y%m%d")
    pid[8] = report.sex if report.sex in ("M", "F") else "U"
    if report.address:
        pid[11] = escape(report.address[:200])
    return pid


def _pv1(report: ReportData) -> Segment:
    pv1 = Segment("PV1")
    pv1[2] = _PATIENT_CLASS.get(report.visit_kind or "", "O")
    if report.department:
        pv1[3] = escape(report.department)
    if report.visit_code:
        pv1[19] = escape(report.visit_code)
    return pv1


def _order(report: ReportData, o: OruOptions, tz: str, with_pdf: bool) -> list[Segment]:
    """ORC, OBR, the version NTE, the observations and the specimens (HL7 v2.5.1 ``ORU_R01.ORDER_OBSERVATION``)."""
    status = "C" if report.correction else "F"
    placer = f"{escape(report.placer_number)}^{escape(o.receiving_application)}" if report.placer_number else ""
    filler = f"{escape(report.filler_number)}^{escape(o.sending_application)}"
    orc = Segment("ORC")
    orc[1] = "RE"
    if placer:
        orc[2] = placer
    orc[3] = filler
    orc[5] = "CM"
    if report.ordering_clinician:
        orc[12] = "^" + escape(report.ordering_clinician)
    obr = Segment("OBR")
    obr[1] = "1"
    if placer:
        obr[2] = placer
    obr[3] = filler
    obr[4] = "11502-2^Laboratory report^LN"
    collected = next((s.collected_at for s in report.specimens if s.collected_at), None)
    if collected:
        obr[7] = dtm(collected, tz)
    if report.ordering_clinician:
        obr[16] = "^" + escape(report.ordering_clinician)
    obr[22] = dtm(report.released_at, tz)
    obr[25] = status
    segments = [orc, obr]
    if report.version > 1:
        nte = Segment("NTE")
        nte[1] = "1"
        kind = "Correction" if report.correction else "Amended report"
        nte[3] = escape(f"{kind}, version {report.version}")
        segments.append(nte)
    observer = _xcn(report.validator, report.validator_name or report.validator) if report.validator else ""
    for index, line in enumerate(report.lines, start=1):
        segments += _observation(index, line, observer, tz)
    if with_pdf:
        segments.append(_pdf_obx(len(report.lines) + 1, status))
    return segments + _specimens(report, tz)


def _observation(index: int, line: ReportLine, observer: str, tz: str) -> list[Segment]:
    """One OBX and its NTE comments (:func:`_add_obx` field for field)."""
    obx = Segment("OBX")
    obx[1] = str(index)
    numeric = bool(_NUMBER.match(line.value.strip()))
    obx[2] = "NM" if numeric else "ST"
    local = f"{escape(line.test_code)}^{escape(line.name_vi or line.test_code)}^L"
    obx[3] = f"{escape(line.loinc)}^{escape(line.name_en or line.test_code)}^LN^{local}" if line.loinc else local
    if line.value:
        obx[5] = line.value.strip() if numeric else escape(line.value)
    if line.units:
        obx[6] = f"{escape(line.units)}^{escape(line.units)}^UCUM"
    if line.reference_range:
        obx[7] = escape(line.reference_range)
    for flag in _flags(line.flags):
        obx.add(8, flag)
    obx[11] = "C" if line.corrected else "F"
    if line.observed_at:
        obx[14] = dtm(line.observed_at, tz)
    if observer:
        obx[16] = observer
    segments = [obx]
    if line.comment:
        for n, text in enumerate(line.comment.splitlines() or [line.comment], start=1):
            nte = Segment("NTE")
            nte[1] = str(n)
            nte[3] = escape(text[:10000])
            segments.append(nte)
    return segments


def _pdf_obx(index: int, status: str) -> Segment:
    """The signed PDF as OBX of type ED (HL7 v2.5.1 2A.24), its Base64 put in place of the placeholder later."""
    obx = Segment("OBX")
    obx[1] = str(index)
    obx[2] = "ED"
    obx[3] = "11502-2^Laboratory report^LN^PDF^Signed report^L"
    obx[5] = "^application^pdf^Base64^" + _PDF_PLACEHOLDER
    obx[11] = status
    return obx


def _specimens(report: ReportData, tz: str) -> list[Segment]:
    """One SPM per specimen (HL7 v2.5.1 7.4.3)."""
    segments = []
    for index, spec in enumerate(report.specimens, start=1):
        spm = Segment("SPM")
        spm[1] = str(index)
        spm[2] = "^" + escape(spec.barcode)
        spm[4] = f"{escape(spec.specimen_type)}^{escape(spec.specimen_type)}^L"
        if spec.collected_at:
            spm[17] = dtm(spec.collected_at, tz)
        if spec.received_at:
            spm[18] = dtm(spec.received_at, tz)
        segments.append(spm)
    return segments


# -- the reference: hl7apy, STRICT, validate() ------------------------------------------------------------------
def _build(report: ReportData, message_id: str, o: OruOptions, now: datetime, pdf: bytes | None) -> bytes:
    """HL7 v2.5.1 7.3.1 ``ORU_R01`` built with hl7apy and strictly validated (what :func:`_segments` mirrors)."""
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
    for i, cx in enumerate(_identifiers(report, o)):
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
