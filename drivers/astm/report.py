"""Turn an ASTM message (LIS2-A2 records, framed or not) into an :class:`InstrumentReport`.

Where each value comes from (LIS2-A2 field numbers, field 1 being the record type):

* sender: H-5 (components joined with ``^``, blanks trimmed); control id: H-3; sent_at: H-14.
  H-12 processing id ``Q`` (quality control) marks every specimen of that message as QC.
* specimen: one :class:`SpecimenReport` per O record; the id is read from ``profile.specimen_id_field``
  (default ``O.3``), then from the fallbacks in ``profile.extra["specimen_id_fallbacks"]`` (default
  ``["O.4.1"]``) while empty. Patient fields come from the preceding P record: id from the first
  non-empty of ``extra["patient_id_fields"]`` (default P-3, P-4, P-5), name P-6, birth P-8, sex P-9.
* QC: O-12 action code in ``profile.qc.action_codes``, or the specimen id matches
  ``profile.qc.specimen_id_patterns``, or H-12 = ``Q``; material, lot and level from the fields the
  profile names (``qc.material_field`` etc.).
* observation (R record): test code from R-3 component ``profile.test_code_component`` (or the
  components listed in ``extra["test_code_components"]``, joined with ``^``), value R-4 exactly as
  sent after unescaping (a multi-component value loses its trailing empty components; if one
  component is left it is the value, else the components are joined with ``^``), units R-5, range R-6,
  flags R-7 (each repeat mapped with ``profile.map_flag``, joined with ``~``), status R-9, operator
  R-11, observed_at R-13 (else R-12, where Horiba puts it; analyser local time in
  ``extra["timezone"]``, default Asia/Ho_Chi_Minh, converted to aware UTC), instrument id R-14;
  catalogue code, LOINC and unit override from ``profile.codes``; LOINC sent by the analyser in R-3
  component ``extra["loinc_component"]`` is used when the profile has none.
* C records: after an R record they become the observation's comment, after an O record the
  specimen's comments, after a P record the comments of that patient's specimens.
* M records: :class:`Attachment` (the record as sent) when ``profile.histograms == "attachment"``.
* Q records: :class:`HostQuery` (Q-3 repeats, component 2 = specimen id, else component 1; ``ALL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.astm.delimiters import RecordError
from drivers.astm.records import (
    CommentRecord,
    HeaderRecord,
    ManufacturerRecord,
    OrderRecord,
    PatientRecord,
    QueryRecord,
    Record,
    ResultRecord,
    TerminatorRecord,
    decode_message,
)
from drivers.profile import Profile, ProfileError
from lis.instrument_report import (
    Attachment,
    HostQuery,
    InstrumentReport,
    MessageKind,
    MessageParseError,
    Observation,
    SpecimenReport,
)

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
_TIME_FORMATS = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 8: "%Y%m%d"}


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A profile field reference such as ``O.3`` or ``O.4.3``: record type, field, optional component."""

    record: str
    field: int
    component: int | None = None

    @classmethod
    def parse(cls, spec: str) -> FieldRef:
        parts = spec.strip().split(".")
        try:
            if len(parts) not in (2, 3) or len(parts[0]) != 1 or not parts[0].isalpha():
                raise ValueError
            numbers = [int(p) for p in parts[1:]]
        except ValueError:
            raise ProfileError(f"profile field reference {spec!r} is not like 'O.3' or 'O.4.2'") from None
        return cls(parts[0].upper(), numbers[0], numbers[1] if len(numbers) == 2 else None)

    def read(self, context: dict[str, Record], encoding: str) -> str:
        record = context.get(self.record)
        if record is None:
            return ""
        if self.component is None:
            return record.text(self.field, encoding).strip()
        return record.component(self.field, self.component, 0, encoding).strip()


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise ProfileError(f"unknown time zone {name!r} in the analyser profile (extra.timezone)") from None


@lru_cache(maxsize=4096)
def parse_timestamp(text: str, zone: str = DEFAULT_TIMEZONE) -> datetime | None:
    """LIS2-A2 date/time ``YYYYMMDD[HHMM[SS]]`` in the analyser's local time, as aware UTC.

    Cached: the results of one message usually share one completion time (datetimes are immutable).
    """
    text = text.strip()
    fmt = _TIME_FORMATS.get(len(text))
    if fmt is None or not text.isdigit():
        return None
    try:
        local = datetime.strptime(text, fmt)
    except ValueError:
        return None
    return local.replace(tzinfo=_zone(zone)).astimezone(UTC)


def _value_text(record: ResultRecord, encoding: str) -> str:
    reps = record.repeats("value", encoding)
    out = []
    for comps in reps:
        while len(comps) > 1 and comps[-1] == "":
            comps.pop()
        non_empty = [c for c in comps if c != ""]
        out.append(non_empty[0] if len(non_empty) == 1 else "^".join(comps))
    return "~".join(out)


def _range_text(record: ResultRecord, encoding: str) -> str:
    comps = record.repeats("reference_range", encoding)[0]
    first = comps[0].strip()
    return first if first else "^".join(comps).strip("^ ")


class _Builder:
    """Walks the records of one capture and fills an InstrumentReport."""

    def __init__(self, profile: Profile, encoding: str) -> None:
        self.profile = profile
        self.encoding = encoding
        extra = profile.extra
        self.zone = str(extra.get("timezone", DEFAULT_TIMEZONE))
        _zone(self.zone)
        self.specimen_refs = [FieldRef.parse(profile.specimen_id_field or "O.3")] + [
            FieldRef.parse(s) for s in extra.get("specimen_id_fallbacks", ["O.4.1"])
        ]
        self.patient_id_refs = [FieldRef.parse(str(f)) for f in extra.get("patient_id_fields", ["P.3", "P.4", "P.5"])]
        self.code_components: list[int] = [int(c) for c in extra.get("test_code_components", [])] or [
            profile.test_code_component
        ]
        self.name_component = int(extra.get("test_name_component", 0))
        self.loinc_component = int(extra.get("loinc_component", 0))
        qc = profile.qc
        self.material_ref = FieldRef.parse(qc.material_field) if qc.material_field else None
        self.lot_ref = FieldRef.parse(qc.lot_field) if qc.lot_field else None
        self.level_ref = FieldRef.parse(qc.level_field) if qc.level_field else None
        self.report = InstrumentReport(kind=MessageKind.OTHER, message_type="ASTM")
        self.context: dict[str, Record] = {}
        self.specimen: SpecimenReport | None = None
        self.last_observation: Observation | None = None
        self.sequence = 0
        self.qc_message = False
        self.patient_comments: list[str] = []

    def add(self, record: Record) -> None:
        if isinstance(record, HeaderRecord):
            self._header(record)
        elif isinstance(record, PatientRecord):
            self.context["P"] = record
            self.context.pop("O", None)
            self.patient_comments = []
            self.specimen = None
            self.last_observation = None
        elif isinstance(record, OrderRecord):
            self._order(record)
        elif isinstance(record, ResultRecord):
            self._result(record)
        elif isinstance(record, CommentRecord):
            self._comment(record)
        elif isinstance(record, ManufacturerRecord):
            self._manufacturer(record)
        elif isinstance(record, QueryRecord):
            self._query(record)
        elif isinstance(record, TerminatorRecord):
            self.context = {k: v for k, v in self.context.items() if k == "H"}
            self.specimen = None
            self.last_observation = None
        else:
            self.report.warnings.append(f"record type {record.record_type!r} ignored")

    def _header(self, h: HeaderRecord) -> None:
        enc = self.encoding
        self.context = {"H": h}
        self.specimen = None
        self.last_observation = None
        comps = [c.strip() for c in h.repeats("sender_id", enc)[0]]
        while comps and not comps[-1]:
            comps.pop()
        r = self.report
        r.sender = r.sender or "^".join(comps)
        r.control_id = r.control_id or h.text("message_control_id", enc).strip()
        r.sent_at = r.sent_at or parse_timestamp(h.text("timestamp", enc), self.zone)
        self.qc_message = h.text("processing_id", enc).strip().upper() == "Q"

    def _order(self, o: OrderRecord) -> None:
        enc = self.encoding
        self.context["O"] = o
        specimen_id = ""
        for ref in self.specimen_refs:
            specimen_id = ref.read(self.context, enc)
            if specimen_id:
                break
        if not specimen_id:
            self.report.warnings.append(f"order record {o.sequence or '?'} carries no specimen id")
        spec = SpecimenReport(specimen_id=specimen_id)
        p = self.context.get("P")
        if p is not None:
            spec.patient_id = next(
                (v for v in (ref.read(self.context, enc) for ref in self.patient_id_refs) if v), "")
            name = [c.strip() for c in p.repeats("name", enc)[0]]
            spec.patient_name = " ".join(c for c in name if c)
            spec.patient_birth_date = p.text("birth_date", enc).strip()
            spec.patient_sex = p.text("sex", enc).strip()
        qc = self.profile.qc
        action = o.text("action_code", enc).strip()
        spec.is_qc = self.qc_message or action in qc.action_codes or qc.matches_specimen_id(specimen_id)
        if spec.is_qc:
            if self.material_ref:
                spec.control_material = self.material_ref.read(self.context, enc)
            if self.lot_ref:
                spec.control_lot = self.lot_ref.read(self.context, enc)
            if self.level_ref:
                spec.control_level = self.level_ref.read(self.context, enc)
        spec.comments.extend(self.patient_comments)
        self.report.specimens.append(spec)
        self.specimen = spec
        self.last_observation = None

    def _current_specimen(self) -> SpecimenReport:
        if self.specimen is None:
            self.report.warnings.append("result or attachment before any order record; specimen id unknown")
            self.specimen = SpecimenReport(specimen_id="")
            self.report.specimens.append(self.specimen)
        return self.specimen

    def _result(self, r: ResultRecord) -> None:
        enc = self.encoding
        profile = self.profile
        reps = r.repeats("universal_test_id", enc)
        comps = reps[0]

        def comp(i: int) -> str:
            return comps[i - 1].strip() if 1 <= i <= len(comps) else ""

        parts = [comp(i) for i in self.code_components]
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        code = "^".join(parts)
        flags = [profile.map_flag(rep[0].strip()) for rep in r.repeats("abnormal_flags", enc)]
        obs = Observation(
            sequence=self.sequence,
            instrument_test_code=code,
            value=_value_text(r, enc),
            units=r.text("units", enc).strip(),
            reference_range=_range_text(r, enc),
            abnormal_flags="~".join(f for f in flags if f),
            result_status=r.text("status", enc).strip(),
            observed_at=parse_timestamp(r.text("completed_at", enc), self.zone)
            or parse_timestamp(r.text("started_at", enc), self.zone),
            test_name=comp(self.name_component) if self.name_component else "",
            operator=r.text("operator_id", enc).strip(),
            instrument_id=r.text("instrument_id", enc).strip(),
        )
        mapping = profile.map_code(code)
        if mapping is not None:
            obs.mapped_test_code = mapping.test
            obs.loinc = mapping.loinc
            obs.unit_override = mapping.unit
        if not obs.loinc and self.loinc_component:
            obs.loinc = comp(self.loinc_component)
        self.sequence += 1
        self._current_specimen().observations.append(obs)
        self.last_observation = obs

    def _comment(self, c: CommentRecord) -> None:
        text = " ".join(
            "^".join(comps).strip("^ ") for comps in c.repeats("comment_text", self.encoding)
        ).strip()
        if not text:
            return
        if self.last_observation is not None:
            obs = self.last_observation
            obs.comment = f"{obs.comment}; {text}" if obs.comment else text
        elif self.specimen is not None:
            self.specimen.comments.append(text)
        elif "P" in self.context:
            self.patient_comments.append(text)  # a comment on the patient: given to its specimens
        else:
            self.report.warnings.append(f"comment outside a specimen ignored: {text[:40]!r}")

    def _manufacturer(self, m: ManufacturerRecord) -> None:
        if self.profile.histograms != "attachment":
            return
        enc = self.encoding
        label = "/".join(m.text(i, enc).strip() for i in (3, 4, 5) if m.text(i, enc).strip())
        data = m.encode().encode(enc, errors="replace")
        self._current_specimen().attachments.append(Attachment(
            name=label or f"M{m.sequence}",
            media_type="application/x-astm-manufacturer-record",
            data=data,
            encoding_note=f"LIS2-A2 M record as sent (delimiters {m.delimiters.field}{m.delimiters.definition})",
        ))

    def _query(self, q: QueryRecord) -> None:
        enc = self.encoding
        ids: list[str] = []
        all_pending = False
        for comps in q.repeats("starting_range_id", enc):
            values = [c.strip() for c in comps]
            if any(v.upper() == "ALL" for v in values):
                all_pending = True
                continue
            specimen = values[1] if len(values) > 1 and values[1] else values[0]
            if specimen:
                ids.append(specimen)
        self.report.queries.append(HostQuery(specimen_ids=ids, all_pending=all_pending,
                                             query_id=q.text("sequence", enc).strip()))

    def finish(self) -> InstrumentReport:
        r = self.report
        if r.observation_count or any(s.attachments for s in r.specimens):
            r.kind = MessageKind.RESULTS
        elif r.queries:
            r.kind = MessageKind.QUERY
        elif r.specimens:
            r.kind = MessageKind.RESULTS
        return r


def parse_astm(raw: bytes, profile: Profile, encoding: str | None = None) -> InstrumentReport:
    """Parse one ASTM capture (framed transfer, or records) with an analyser profile.

    Several messages (H..L H..L) in one capture are merged into one report; observation sequence
    numbers run over the whole capture. Raises :class:`MessageParseError` with the reason when the
    bytes are not LIS2-A2 records, and :class:`~drivers.profile.ProfileError` when the profile names a
    malformed field reference or an unknown time zone.
    """
    enc = encoding or profile.encoding
    if not raw or not raw.strip(b"\x00\x02\x03\x04\x05\x06\x15\x17\r\n \t"):
        raise MessageParseError("empty ASTM message: no records")
    warnings: list[str] = []
    try:
        records = decode_message(raw, enc, warnings=warnings)
    except RecordError as exc:
        raise MessageParseError(f"not an ASTM LIS2-A2 message: {exc}") from exc
    if not records:
        raise MessageParseError("empty ASTM message: no records")
    if not isinstance(records[0], HeaderRecord):
        raise MessageParseError(
            f"ASTM message must start with a header (H) record, got {records[0].record_type!r}")
    builder = _Builder(profile, enc)
    builder.report.warnings.extend(warnings)
    for record in records:
        builder.add(record)
    return builder.finish()
