"""HL7 v2 analyser message -> :class:`lis.instrument_report.InstrumentReport`.

Messages understood:

* ``ORU^R01`` (HL7 v2.3.1 / v2.4 / v2.5.1 chapter 7.3.1): one specimen per OBR group (ORC OBR {OBX {NTE}}
  [SPM]); groups with the same specimen id are merged.
* ``OUL^R22`` (IHE LAW LAB-29, HL7 v2.5.1 7.3.5; also R23/R24 read the same way): one specimen per SPM group
  (SPM [OBX] [SAC] [INV] {OBR ORC [TQ1] {OBX [TCD] {NTE}}}).
* ``QBP^Q11`` (IHE LAW LAB-27: QPD-2 query tag, QPD-3 container/specimen id) and ``QRY^Q02`` (Mindray: QRD-4
  query id, QRD-8 specimen ids) -> :class:`HostQuery`, kind QUERY.

Where things sit is the profile's business (ARCHITECTURE.md principle 4); the HL7 keys read from the profile's
``[extra]`` table are listed in ``drivers/profile.py``. OBX rules (HL7 v2.5.1 7.4.2): OBX-2 value type,
OBX-3 identifier (code, text, coding system; LOINC when the coding system is ``LN``), OBX-5 value, OBX-6 units
(first component), OBX-7 range, OBX-8 abnormal flags (repeats joined by ``~``), OBX-11 status, OBX-14 time,
OBX-16 responsible observer, OBX-18 equipment instance. ED values (histograms, scattergrams) become
:class:`Attachment` objects, not observations. Naive times are local to the instrument (default
Asia/Ho_Chi_Minh) and returned as aware UTC.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drivers.hl7.dtm import DEFAULT_TIMEZONE, parse_dtm
from drivers.hl7.message import Message, ParseError, Segment, parse_message, parse_path
from drivers.profile import Profile
from lis.instrument_report import (
    Attachment,
    HostQuery,
    InstrumentReport,
    MessageKind,
    MessageParseError,
    Observation,
    SpecimenReport,
)

# Where a specimen id may sit when the profile field is empty: specimen, container, then order numbers.
_SPECIMEN_ID_FALLBACKS = ("SPM.2.1.1", "SPM.2.2.1", "SAC.3.1", "OBR.3.1", "OBR.2.1", "ORC.3.1", "ORC.2.1")
_MESSAGE_LEVEL = frozenset({"MSH", "PID", "PD1", "PV1", "PV2"})  # segments a path may read outside its group
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
_ATTACHMENT_TYPES = frozenset({"ED"})
_RESULT_MESSAGES = frozenset({"ORU", "OUL"})


@dataclass(frozen=True, slots=True)
class _Dialect:
    """The profile's HL7 keys, read once per call (see ``drivers/profile.py`` for their meaning)."""

    code_path: tuple[int, ...]
    timezone: str
    trust_msh18: bool
    observed_at_fallback: str
    info_codes: frozenset[str]
    qc_fields: dict[str, tuple[str, ...]]
    calibration_fields: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, profile: Profile) -> _Dialect:
        extra: dict[str, Any] = profile.extra
        name, numbers = parse_path(str(extra.get("obx_code_field", "OBX.3.1")))
        if name != "OBX":
            raise MessageParseError(f"profile {profile.name}: extra.obx_code_field must be an OBX path")
        qc_fields = {k: tuple(map(str, v)) for k, v in dict(extra.get("qc_fields") or {}).items()}
        if not qc_fields:
            qc_fields = {"SPM.11": tuple(profile.qc.action_codes)}
        return cls(
            code_path=numbers,
            timezone=str(extra.get("timezone", DEFAULT_TIMEZONE)),
            trust_msh18=bool(extra.get("trust_msh18", True)),
            observed_at_fallback=str(extra.get("observed_at_fallback", "")),
            info_codes=frozenset(map(str, extra.get("info_codes", ()))),
            qc_fields=qc_fields,
            calibration_fields={k: tuple(map(str, v)) for k, v in dict(extra.get("calibration_fields") or {}).items()},
        )


@dataclass(slots=True)
class _Group:
    """Segments of one specimen group plus the patient (PID) in force when it started."""

    segments: list[Segment] = field(default_factory=list)
    pid: Segment | None = None


def parse_hl7(raw: bytes, profile: Profile, encoding: str | None = None) -> InstrumentReport:
    """Parse one HL7 v2 message from an analyser described by ``profile``.

    ``encoding`` overrides the profile's per-instrument encoding as the fallback when MSH-18 is empty or wrong.
    Raises :class:`MessageParseError` (with a reason for the quarantine view) when ``raw`` is not HL7 v2.
    """
    dialect = _Dialect.of(profile)
    try:
        msg = parse_message(raw, encoding or profile.encoding, trust_msh18=dialect.trust_msh18)
    except ParseError as exc:
        raise MessageParseError(f"not an HL7 v2 message: {exc}") from exc
    msh = msg.msh
    msg_code, trigger = msh.value(9, 1), msh.value(9, 2)
    app, facility = msh.value(3, 1), msh.value(4, 1)
    report = InstrumentReport(
        kind=MessageKind.OTHER,
        sender="/".join(p for p in (app, facility) if p),
        control_id=msh.value(10),
        message_type=f"{msg_code}^{trigger}" if trigger else msg_code,
        sent_at=parse_dtm(msh.value(7), dialect.timezone),
        warnings=list(msg.warnings),
    )
    if not msg_code:
        report.warnings.append("MSH-9 message type is empty")
    if msg_code in _RESULT_MESSAGES:
        if _matches(dialect.calibration_fields, msg, ()):
            report.warnings.append("calibration results: not stored")
            return report
        _read_results(msg, profile, dialect, report)
        report.kind = MessageKind.RESULTS if report.specimens else MessageKind.OTHER
    elif (msg_code, trigger) == ("QBP", "Q11"):
        report.kind = MessageKind.QUERY
        report.queries.append(_qbp_query(msg))
    elif (msg_code, trigger) == ("QRY", "Q02"):
        report.kind = MessageKind.QUERY
        report.queries.append(_qry_query(msg))
    else:
        report.warnings.append(f"message type {report.message_type or '?'} carries nothing to store")
    return report


def _qbp_query(msg: Message) -> HostQuery:
    """IHE LAW LAB-27 QBP^Q11: QPD-1 WOS, QPD-2 query tag, QPD-3 container (specimen) id."""
    qpd = msg.segment("QPD")
    if qpd is None:
        raise MessageParseError("QBP^Q11 without a QPD segment")
    ids = [r for r in (qpd.value(3, 1, 1, k + 1) for k in range(len(qpd.repeats(3)))) if r]
    return HostQuery(specimen_ids=ids, all_pending=not ids or ids == ["ALL"], query_id=qpd.value(2))


def _qry_query(msg: Message) -> HostQuery:
    """HL7 v2.3.1 QRY^Q02 (Mindray): QRD-4 query id, QRD-8 "who subject filter" = specimen ids."""
    qrd = msg.segment("QRD")
    if qrd is None:
        raise MessageParseError("QRY^Q02 without a QRD segment")
    ids = [r for r in (qrd.value(8, 1, 1, k + 1) for k in range(len(qrd.repeats(8)))) if r]
    all_pending = not ids or [i.upper() for i in ids] == ["ALL"]
    return HostQuery(specimen_ids=[] if all_pending else ids, all_pending=all_pending, query_id=qrd.value(4))


def _groups(msg: Message) -> list[_Group]:
    """Split result segments into specimen groups: at SPM for OUL, at OBR (with a preceding ORC) otherwise."""
    anchor = "SPM" if msg.msh.value(9, 1) == "OUL" and msg.segment("SPM") is not None else "OBR"
    groups: list[_Group] = []
    pid: Segment | None = None
    pending: list[Segment] = []
    for seg in msg:
        name = seg.name
        if name == "PID":
            pid, pending = seg, []
        elif name == anchor:
            groups.append(_Group([*pending, seg], pid))
            pending = []
        elif name == "ORC" and anchor == "OBR":
            pending = [seg]
        elif groups and name not in _MESSAGE_LEVEL:
            groups[-1].segments.append(seg)
        elif name == "OBX":  # OBX before any OBR/SPM (seen on small analysers): keep it in its own group
            groups.append(_Group([*pending, seg], pid))
            pending = []
    return groups


def _path_value(path: str, segments: Sequence[Segment], msg: Message, obx_code: tuple[int, ...]) -> str:
    """Value at ``SEG.f[.c[.s]]`` in the group (else the message), or ``OBX:CODE`` = OBX-5 of that code."""
    if not path:
        return ""
    if path.startswith("OBX:"):
        code = path[4:]
        for seg in segments:
            if seg.name == "OBX" and seg.value(*obx_code) == code:
                return seg.value(5)
        return ""
    name, numbers = parse_path(path)
    for seg in segments:
        if seg.name == name:
            return seg.value(*numbers)
    if name not in _MESSAGE_LEVEL:  # never borrow another specimen group's SPM/OBR
        return ""
    found = msg.segment(name)
    return found.value(*numbers) if found is not None else ""


def _matches(markers: dict[str, tuple[str, ...]], msg: Message, segments: Sequence[Segment]) -> bool:
    return any(_path_value(path, segments, msg, (3, 1)) in values for path, values in markers.items() if values)


def _read_results(msg: Message, profile: Profile, dialect: _Dialect, report: InstrumentReport) -> None:
    by_id: dict[str, SpecimenReport] = {}
    sequence = 0
    for group in _groups(msg):
        segs = group.segments
        spec_id = _path_value(profile.specimen_id_field, segs, msg, dialect.code_path)
        if not spec_id:
            spec_id = next((v for p in _SPECIMEN_ID_FALLBACKS if (v := _path_value(p, segs, msg, (3, 1)))), "")
            if profile.specimen_id_field:
                report.warnings.append(
                    f"{profile.specimen_id_field} is empty; specimen id {spec_id!r} taken from another field"
                )
        specimen = by_id.get(spec_id) if spec_id else None
        if specimen is None:
            specimen = SpecimenReport(specimen_id=spec_id)
            _fill_patient(specimen, group.pid)
            _fill_qc(specimen, profile, dialect, segs, msg)
            report.specimens.append(specimen)
            if spec_id:
                by_id[spec_id] = specimen
            else:
                report.warnings.append("a specimen group has no specimen id")
        fallback_time = None
        if dialect.observed_at_fallback:
            fallback_time = parse_dtm(_path_value(dialect.observed_at_fallback, segs, msg, (3, 1)), dialect.timezone)
        last: Observation | None = None
        for seg in segs:
            if seg.name == "OBX":
                last = None
                vtype = seg.value(2)
                code = seg.value(*dialect.code_path)
                if vtype in _ATTACHMENT_TYPES:
                    if profile.histograms == "attachment":
                        specimen.attachments.append(_attachment(seg, code, report))
                    continue
                if code in dialect.info_codes:
                    specimen.comments.append(f"{seg.value(3, 2) or code}: {_obx_value(seg, vtype)}")
                    continue
                last = _observation(seg, vtype, code, sequence, profile, dialect, fallback_time, report)
                specimen.observations.append(last)
                sequence += 1
            elif seg.name == "NTE":
                text = "\n".join(seg.text(3, k + 1) for k in range(len(seg.repeats(3))))
                if not text:
                    continue
                if last is not None:
                    last.comment = f"{last.comment}\n{text}" if last.comment else text
                else:
                    specimen.comments.append(text)


def _fill_patient(specimen: SpecimenReport, pid: Segment | None) -> None:
    """PID-3 (first repeat, else PID-2 / PID-4) id; PID-5 name; PID-7 birth date; PID-8 sex."""
    if pid is None:
        return
    specimen.patient_id = pid.value(3, 1) or pid.value(2, 1) or pid.value(4, 1)
    specimen.patient_name = person_name(pid.components(5))
    specimen.patient_birth_date = pid.value(7, 1)
    specimen.patient_sex = pid.value(8, 1)


def person_name(xpn: Sequence[str]) -> str:
    """Display name from an XPN (family ^ given ^ further given names), in Vietnamese order.

    Vietnamese order is family, middle, given ("Nông Thị Hoa" = XPN.1 Nông, XPN.3 Thị, XPN.2 Hoa);
    analysers that put the whole name in one component round-trip unchanged.
    """
    family = xpn[0] if xpn else ""
    given = xpn[1] if len(xpn) > 1 else ""
    middle = xpn[2] if len(xpn) > 2 else ""
    return " ".join(p for p in (family, middle, given) if p).strip()


def _fill_qc(
    specimen: SpecimenReport, profile: Profile, dialect: _Dialect, segs: Sequence[Segment], msg: Message
) -> None:
    qc = profile.qc
    if not (_matches(dialect.qc_fields, msg, segs) or qc.matches_specimen_id(specimen.specimen_id)):
        return
    specimen.is_qc = True
    # A control material has no patient: drop what a message-level PID would otherwise lend it.
    specimen.patient_id = specimen.patient_name = specimen.patient_sex = specimen.patient_birth_date = ""
    specimen.control_material = _path_value(qc.material_field, segs, msg, dialect.code_path)
    specimen.control_lot = _path_value(qc.lot_field, segs, msg, dialect.code_path)
    specimen.control_level = _path_value(qc.level_field, segs, msg, dialect.code_path)


def _obx_value(seg: Segment, vtype: str) -> str:
    """OBX-5 as text: coded -> identifier (else text), SN -> joined parts, others -> repeats joined by ~."""
    raw = seg.field(5)
    d = seg.delimiters
    if not raw or not any(c and c in raw for c in (d.component, d.repetition, d.escape, d.subcomponent)):
        return raw
    if vtype in _CODED_TYPES:
        return seg.value(5, 1) or seg.value(5, 2)
    if vtype == "SN":
        return "".join(seg.components(5))
    return d.repetition.join(seg.text(5, k + 1) for k in range(len(seg.repeats(5))))


def _observation(
    seg: Segment,
    vtype: str,
    code: str,
    sequence: int,
    profile: Profile,
    dialect: _Dialect,
    fallback_time: datetime | None,
    report: InstrumentReport,
) -> Observation:
    loinc = ""
    if seg.value(3, 3) == "LN":
        loinc = seg.value(3, 1)
    elif seg.value(3, 6) == "LN":
        loinc = seg.value(3, 4)
    mapping = profile.map_code(code)
    if mapping is not None and mapping.loinc:
        loinc = mapping.loinc
    time_text = seg.value(14, 1)
    observed_at = parse_dtm(time_text, dialect.timezone) if time_text else fallback_time
    if time_text and observed_at is None:
        report.warnings.append(f"OBX {seg.value(1)}: bad OBX-14 time {time_text!r}")
    reps = seg.repeats(8)
    flags = seg.value(8) if len(reps) <= 1 else "~".join(seg.value(8, 1, 1, k + 1) for k in range(len(reps)))
    operator = seg.value(16, 1)
    if not operator and seg.field(16):
        operator = person_name(seg.components(16)[1:])
    return Observation(
        sequence=sequence,
        instrument_test_code=code,
        value=_obx_value(seg, vtype),
        units=seg.value(6, 1),
        reference_range=seg.text(7) if seg.field(7) else "",
        abnormal_flags=flags,
        result_status=seg.value(11),
        observed_at=observed_at,
        test_name=seg.value(3, 2),
        loinc=loinc,
        mapped_test_code=mapping.test if mapping is not None else None,
        unit_override=mapping.unit if mapping is not None else None,
        operator=operator,
        instrument_id=seg.value(18, 1),
    )


_MEDIA = {"bmp": "image/bmp", "png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "gif": "image/gif"}
_B64_SPACE = re.compile(rb"\s+")


def _attachment(seg: Segment, code: str, report: InstrumentReport) -> Attachment:
    """OBX ED (HL7 v2.5.1 2A.3.23): source ^ type of data ^ subtype ^ encoding (Base64 | Hex | A) ^ data."""
    kind, subtype, enc = seg.value(5, 2), seg.value(5, 3), seg.value(5, 4)
    payload = seg.value(5, 5)
    media = _MEDIA.get(subtype.lower()) or (f"{kind}/{subtype}".lower() if kind and subtype else "")
    media = media or "application/octet-stream"
    note = enc
    try:
        if enc.upper() == "BASE64":
            data = base64.b64decode(_B64_SPACE.sub(b"", payload.encode("utf-8")), validate=True)
        elif enc.upper() == "HEX":
            data = bytes.fromhex(payload)
        else:
            data = payload.encode("utf-8")
    except (binascii.Error, ValueError):
        report.warnings.append(f"OBX {seg.value(1)} ({code}): {enc} data does not decode; kept as sent")
        data, note = payload.encode("utf-8"), f"undecodable {enc}"
    return Attachment(name=seg.value(3, 2) or code, media_type=media, data=data, encoding_note=note)
