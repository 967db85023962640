"""Reading orders and demographics sent by the EMR (python-hl7 parser, tolerant of real-world messages).

* ``OML^O21`` (HL7 v2.5.1 4.4.6, laboratory order) and ``ORM^O01`` (4.4.1, general order): ORC/OBR groups.
  OBR-4 is the test (local code, or LOINC when the coding system is ``LN``); the specimen id is SPM-2, else
  OBR-3 / ORC-3 (filler number set by the specimen label printer), else the placer number; ORC-1 ``NW`` orders,
  ``CA`` cancels. Tests on the same specimen form one LIS order.
* ``ADT^A01/A04/A08`` (3.3.1 / 3.3.4 / 3.3.8): PID (CCCD ``NI``, BHYT ``HC``, hospital id ``MR``), PV1-19 visit.

Errors are :class:`InboundError` with an HL7 table 0357 code and the segment/field at fault, so the ACK can
name them (ERR-2 location, ERR-3 code, ERR-8 text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import hl7

from interfaces.er7 import parse_date, parse_dtm, unescape
from lis.services.patients import PatientData

NATIONAL_ID_TYPES = {"NI", "CCCD", "NNVN"}
INSURANCE_TYPES = {"HC", "BHYT", "SB", "NH"}
MRN_TYPES = {"MR", "PI", "PT", "PN", ""}


class InboundError(ValueError):
    """The message cannot be processed; ``code`` from HL7 table 0357, ``where`` like ``PID-7``."""

    def __init__(self, message: str, code: int = 207, where: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.where = where


@dataclass(frozen=True, slots=True)
class MshInfo:
    control_id: str
    message_code: str
    trigger: str
    structure: str
    version: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    processing_id: str

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger}"


@dataclass
class VisitData:
    visit_code: str
    kind: str = "outpatient"
    department: str = ""


@dataclass(frozen=True, slots=True)
class TestRef:
    """OBR-4 as sent: identifier, text, coding system, and the alternate identifier and its system."""

    __test__ = False  # not a pytest class

    code: str
    text: str = ""
    system: str = ""
    alt_code: str = ""
    alt_system: str = ""


@dataclass
class OrderGroup:
    """The tests of one specimen, from one or more ORC/OBR groups."""

    control: str  # ORC-1: NW | CA | ...
    placer_number: str | None
    specimen_id: str
    tests: list[TestRef] = field(default_factory=list)
    priority: str = "routine"
    ordering_clinician: str = ""
    clinical_info: str = ""
    collected_at: datetime | None = None
    specimen_type: str | None = None


@dataclass
class InboundMessage:
    msh: MshInfo
    patient: PatientData | None = None
    visit: VisitData | None = None
    orders: list[OrderGroup] = field(default_factory=list)


def _s(value: object) -> str:
    return unescape(str(value)).strip() if value is not None else ""


def _get(seg: hl7.Segment, f: int, c: int = 1, r: int = 1) -> str:
    """Field f, repetition r, component c (1-based), empty when absent."""
    try:
        return _s(seg.extract_field(repeat_num=r, field_num=f, component_num=c))
    except (IndexError, KeyError, ValueError, TypeError):
        return ""


def decode(raw: bytes) -> str:
    """HL7 text: UTF-8 (MSH-18 ``UNICODE UTF-8``, the usual for Vietnamese), else Windows-1258 / latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        head = raw.split(b"\r", 1)[0].upper()
        if b"8859/1" in head:
            return raw.decode("latin-1")
        return raw.decode("cp1258", errors="replace")


def read_msh(text: str) -> MshInfo:
    text = text.replace("\r\n", "\r").replace("\n", "\r").lstrip()
    if not text.startswith("MSH") or len(text) < 8:
        raise InboundError("the message does not start with an MSH segment", 100, "MSH")
    try:
        msg = hl7.parse(text)
        msh = msg.segment("MSH")
    except (hl7.ParseException, KeyError, IndexError, ValueError) as exc:
        raise InboundError(f"unreadable MSH: {exc}", 100, "MSH") from exc
    return MshInfo(
        control_id=_get(msh, 10), message_code=_get(msh, 9, 1), trigger=_get(msh, 9, 2),
        structure=_get(msh, 9, 3), version=_get(msh, 12), sending_application=_get(msh, 3),
        sending_facility=_get(msh, 4), receiving_application=_get(msh, 5), receiving_facility=_get(msh, 6),
        processing_id=_get(msh, 11) or "P",
    )


def parse_inbound(raw: bytes, timezone: str) -> InboundMessage:
    """Parse an OML^O21, ORM^O01 or ADT^A01/A04/A08 (raises :class:`InboundError`)."""
    text = decode(raw).replace("\r\n", "\r").replace("\n", "\r").strip("\r\n ") + "\r"
    info = read_msh(text)
    msg = hl7.parse(text)
    kind = info.message_type
    out = InboundMessage(info)
    if kind in ("ADT^A01", "ADT^A04", "ADT^A08", "OML^O21", "ORM^O01"):
        out.patient = _patient(msg)
        out.visit = _visit(msg)
    else:
        raise InboundError(f"message type {kind} is not accepted here (OML^O21, ORM^O01, ADT^A01/A04/A08)",
                           200, "MSH-9")
    if info.message_code in ("OML", "ORM"):
        out.orders = _orders(msg, timezone)
        if not out.orders:
            raise InboundError("the order has no ORC/OBR group", 101, "OBR")
    return out


def _repetitions(seg: hl7.Segment, f: int) -> int:
    """How many repetitions field ``f`` has (python-hl7 keeps them as the field's items)."""
    if len(seg) <= f:
        return 0
    field_ = seg[f]
    if isinstance(field_, str):
        return 1 if field_ else 0
    return len(field_) if field_ and not isinstance(field_[0], str) else 1


def _segments(msg: hl7.Message, name: str) -> list[hl7.Segment]:
    return [s for s in msg if _s(s[0]) == name]


def _patient(msg: hl7.Message) -> PatientData:
    pids = _segments(msg, "PID")
    if not pids:
        raise InboundError("PID segment missing", 100, "PID")
    pid = pids[0]
    national_id = insurance = mrn = None
    reps = _repetitions(pid, 3)
    for r in range(1, reps + 1):
        value, kind = _get(pid, 3, 1, r), _get(pid, 3, 5, r).upper()
        authority = _get(pid, 3, 4, r).upper()
        if not value:
            continue
        if kind in NATIONAL_ID_TYPES or authority in ("BCA", "CCCD"):
            national_id = national_id or value
        elif kind in INSURANCE_TYPES or authority in ("BHXH", "BHYT"):
            insurance = insurance or value
        elif kind in MRN_TYPES:
            mrn = mrn or value
    if national_id is None:
        alt = _get(pid, 19)  # PID-19 SSN: some HIS put the CCCD there
        national_id = alt or None
    family, given, middle = _get(pid, 5, 1), _get(pid, 5, 2), _get(pid, 5, 3)
    name = " ".join(p for p in (family, middle, given) if p)
    if not name:
        raise InboundError("PID-5 patient name is empty", 101, "PID-5")
    birth: date | None = None
    raw_birth = _get(pid, 7)
    if raw_birth:
        try:
            birth = parse_date(raw_birth)
        except ValueError as exc:
            raise InboundError(f"PID-7 birth date: {exc}", 102, "PID-7") from exc
    sex = _get(pid, 8).upper()
    address = ", ".join(p for p in (_get(pid, 11, c) for c in (1, 2, 3, 4, 5)) if p)
    return PatientData(name=name, national_id=national_id, sex=sex if sex in ("M", "F") else "U",
                       birth_date=birth, insurance_number=insurance, mrn=mrn, phone=_get(pid, 13),
                       address=address)


def _visit(msg: hl7.Message) -> VisitData | None:
    pv1s = _segments(msg, "PV1")
    if not pv1s:
        return None
    pv1 = pv1s[0]
    code = _get(pv1, 19)
    if not code:
        return None
    kind = {"I": "inpatient", "E": "emergency"}.get(_get(pv1, 2).upper(), "outpatient")
    return VisitData(code, kind, _get(pv1, 3))


def _clinician(seg: hl7.Segment, f: int) -> str:
    family, given, prefix = _get(seg, f, 2), _get(seg, f, 3), _get(seg, f, 6)
    name = " ".join(p for p in (prefix, family, given) if p)
    return name or _get(seg, f, 1)


def _orders(msg: hl7.Message, timezone: str) -> list[OrderGroup]:
    groups: list[dict[str, object]] = []
    current: dict[str, object] | None = None
    for seg in msg:
        name = _s(seg[0])
        if name == "ORC":
            current = {"orc": seg, "obr": [], "spm": None, "tq1": None}
            groups.append(current)
        elif name == "OBR":
            if current is None or (current["obr"] and current.get("orc") is None):
                current = {"orc": None, "obr": [], "spm": None, "tq1": None}
                groups.append(current)
            current["obr"].append(seg)  # type: ignore[union-attr]
        elif name == "SPM" and current is not None:
            current["spm"] = seg
        elif name == "TQ1" and current is not None:
            current["tq1"] = seg
    by_specimen: dict[str, OrderGroup] = {}
    for g in groups:
        orc, obrs, spm, tq1 = g["orc"], g["obr"], g["spm"], g["tq1"]
        assert isinstance(obrs, list)
        if not obrs:
            continue
        first = obrs[0]
        control = (_get(orc, 1) if orc is not None else "") or "NW"
        placer = (_get(orc, 2) if orc is not None else "") or _get(first, 2) or None
        specimen = ""
        if spm is not None:
            specimen = _get(spm, 2, 2) or _get(spm, 2, 1)
        specimen = specimen or _get(first, 3) or (_get(orc, 3) if orc is not None else "") or (placer or "")
        if not specimen:
            raise InboundError("no specimen id: send SPM-2, OBR-3 or ORC-2", 101, "SPM-2")
        group = by_specimen.get(specimen)
        if group is None:
            priority = "routine"
            flags = {_get(first, 5).upper(), _get(first, 27, 6).upper()}
            if tq1 is not None:
                flags.add(_get(tq1, 9).upper())
            if "S" in flags or "STAT" in flags:
                priority = "stat"
            collected = None
            raw_time = _get(first, 7) or (_get(spm, 17) if spm is not None else "")
            if raw_time:
                try:
                    collected = parse_dtm(raw_time, timezone)
                except ValueError as exc:
                    raise InboundError(f"OBR-7 collection time: {exc}", 102, "OBR-7") from exc
            clinician = (_clinician(orc, 12) if orc is not None else "") or _clinician(first, 16)
            group = OrderGroup(control=control.upper(), placer_number=placer, specimen_id=specimen,
                               priority=priority, ordering_clinician=clinician, clinical_info=_get(first, 13),
                               collected_at=collected,
                               specimen_type=(_get(spm, 4, 1) or None) if spm is not None else None)
            by_specimen[specimen] = group
        for obr in obrs:
            code, text, system = _get(obr, 4, 1), _get(obr, 4, 2), _get(obr, 4, 3)
            alt, alt_system = _get(obr, 4, 4), _get(obr, 4, 6)
            if not code and not alt:
                raise InboundError("OBR-4 (test to perform) is empty", 101, "OBR-4")
            group.tests.append(TestRef(code, text, system.upper(), alt, alt_system.upper()))
    return list(by_specimen.values())
