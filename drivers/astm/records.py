"""LIS2-A2 (ASTM E1394) records: typed dataclasses, decoder and encoder.

Each record type has a dataclass whose attributes are named after the LIS2-A2 field tables (section 7
to 15 of the standard: H header, P patient, O order, R result, C comment, Q request information,
M manufacturer, S scientific, L terminator). Field 1 is the record type itself, so ``OrderRecord.
specimen_id`` is O-3 and ``ResultRecord.value`` is R-4.

Attributes hold the field's *wire text* (still escaped, in the message's own delimiters): decoding a
message is then one split per record and per field, and the structured view is computed on demand by
:meth:`Record.repeats`, :meth:`Record.component` and :meth:`Record.text`, which unescape. Build records
for sending with :meth:`Record.build`, which escapes plain values, components and repeats for you.

Fields after the last named one are kept in ``extra`` and the original field count in ``width``, so
``encode_message(decode_message(x))`` gives ``x`` back for canonically escaped input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from drivers.astm.delimiters import DEFAULT_DELIMITERS, Delimiters, RecordError
from drivers.astm.framing import deframe, is_framed

ENCODINGS = ("ascii", "latin-1", "cp1252", "utf-8")


class Record:
    """Behaviour shared by every LIS2-A2 record dataclass."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""
    FIELD_NAMES: ClassVar[tuple[str, ...]] = ()
    _INDEX: ClassVar[dict[str, int]] = {}

    extra: tuple[str, ...]
    delimiters: Delimiters
    width: int

    @property
    def record_type(self) -> str:
        return self.TYPE

    def values(self) -> list[str]:
        """Wire text of fields 2.. (named fields, then ``extra``)."""
        return [getattr(self, name) for name in self.FIELD_NAMES] + list(self.extra)

    def field(self, position: int) -> str:
        """Wire text of field ``position`` (1-based, field 1 being the record type), "" when absent."""
        if position == 1:
            return self.TYPE
        values = self.values()
        return values[position - 2] if 2 <= position <= len(values) + 1 else ""

    def _wire(self, field: str | int) -> str:
        if isinstance(field, int):
            return self.field(field)
        return getattr(self, field)

    def repeats(self, field: str | int, encoding: str = "latin-1") -> list[list[str]]:
        """Unescaped repeats and components of a field given by name or 1-based position."""
        return self.delimiters.split_field(self._wire(field), encoding)

    def component(self, field: str | int, index: int, repeat: int = 0, encoding: str = "latin-1") -> str:
        """Unescaped component ``index`` (1-based) of repeat ``repeat`` (0-based); "" when absent."""
        wire = self._wire(field)
        d = self.delimiters
        reps = wire.split(d.repeat)
        if repeat >= len(reps):
            return ""
        comps = reps[repeat].split(d.component)
        return d.unescape(comps[index - 1], encoding) if 1 <= index <= len(comps) else ""

    def text(self, field: str | int, encoding: str = "latin-1") -> str:
        """Unescaped text of a field that has no components or repeats (else its first component)."""
        wire = self._wire(field)
        d = self.delimiters
        if d.component in wire or d.repeat in wire:
            return self.component(field, 1, 0, encoding)
        return d.unescape(wire, encoding)

    @classmethod
    def build(cls, delimiters: Delimiters = DEFAULT_DELIMITERS, **values: Any) -> Record:
        """A record from plain values: a str (escaped as one component), a list of components or a
        list of repeats (lists of components). Unknown names raise :class:`RecordError`."""
        unknown = set(values) - set(cls.FIELD_NAMES)
        if unknown:
            raise RecordError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
        wire = {k: delimiters.join_field(v) for k, v in values.items()}
        if cls is HeaderRecord:
            wire["delimiter_definition"] = delimiters.definition
        return cls(**wire, delimiters=delimiters)  # type: ignore[call-arg]

    def encode(self, delimiters: Delimiters | None = None) -> str:
        """The record as one line of text without the trailing CR."""
        d = delimiters or self.delimiters
        parts = self.values()
        if d != self.delimiters:
            parts = [self.delimiters.translate_field(p, d) for p in parts]
        if self.TYPE == "H":
            parts[0] = d.definition
        line = [self.TYPE, *parts]
        while len(line) > 1 and line[-1] == "":
            line.pop()
        if len(line) < self.width:
            line.extend([""] * (self.width - len(line)))
        return d.field.join(line)


def _record(type_code: str) -> Any:
    """Class decorator: make a slotted dataclass and record its LIS2-A2 field names."""

    def wrap(cls: type) -> type:
        dc = dataclass(slots=True)(cls)
        names = tuple(f.name for f in dataclasses.fields(dc) if f.name not in ("extra", "delimiters", "width"))
        dc.TYPE = type_code
        dc.FIELD_NAMES = names
        dc._INDEX = {n: i + 2 for i, n in enumerate(names)}
        return dc

    return wrap


_D = DEFAULT_DELIMITERS


@_record("H")
class HeaderRecord(Record):
    """LIS2-A2 section 7: message header. H-2 is the delimiter definition."""

    delimiter_definition: str = "\\^&"
    message_control_id: str = ""
    access_password: str = ""
    sender_id: str = ""  # H-5 sender name or id (name^version^serial...)
    sender_address: str = ""
    reserved: str = ""
    sender_phone: str = ""
    sender_characteristics: str = ""
    receiver_id: str = ""
    comments: str = ""
    processing_id: str = ""  # P production, T training, D debugging, Q quality control
    version: str = ""
    timestamp: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("P")
class PatientRecord(Record):
    """LIS2-A2 section 8: patient information."""

    sequence: str = ""
    practice_patient_id: str = ""
    laboratory_patient_id: str = ""
    patient_id_3: str = ""
    name: str = ""  # last^first^middle^suffix^title
    mother_maiden_name: str = ""
    birth_date: str = ""
    sex: str = ""  # M F U
    race: str = ""
    address: str = ""
    reserved: str = ""
    phone: str = ""
    attending_physician: str = ""
    special_field_1: str = ""
    special_field_2: str = ""
    height: str = ""
    weight: str = ""
    diagnosis: str = ""
    medications: str = ""
    diet: str = ""
    practice_field_1: str = ""
    practice_field_2: str = ""
    admission_dates: str = ""
    admission_status: str = ""
    location: str = ""
    diagnostic_code_nature: str = ""
    diagnostic_code: str = ""
    religion: str = ""
    marital_status: str = ""
    isolation_status: str = ""
    language: str = ""
    hospital_service: str = ""
    hospital_institution: str = ""
    dosage_category: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("O")
class OrderRecord(Record):
    """LIS2-A2 section 9: test order. O-3 specimen id, O-5 tests, O-12 action code, O-26 report type."""

    sequence: str = ""
    specimen_id: str = ""
    instrument_specimen_id: str = ""
    universal_test_id: str = ""
    priority: str = ""  # S stat, A asap, R routine, C callback, P preoperative
    requested_at: str = ""
    collected_at: str = ""
    collection_end_at: str = ""
    collection_volume: str = ""
    collector_id: str = ""
    action_code: str = ""  # C cancel, A add, N new, P pending, L reserved, X in process, Q QC
    danger_code: str = ""
    clinical_info: str = ""
    received_at: str = ""
    specimen_descriptor: str = ""  # specimen type^source
    ordering_physician: str = ""
    physician_phone: str = ""
    user_field_1: str = ""
    user_field_2: str = ""
    laboratory_field_1: str = ""
    laboratory_field_2: str = ""
    reported_at: str = ""
    instrument_charge: str = ""
    instrument_section_id: str = ""
    # O-26: O order, C correction, P preliminary, F final, X cannot be done, Y no order for the test,
    # Z no record of the patient, Q response to a query
    report_type: str = ""
    reserved: str = ""
    collection_location: str = ""
    nosocomial_flag: str = ""
    specimen_service: str = ""
    specimen_institution: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("R")
class ResultRecord(Record):
    """LIS2-A2 section 10: result. R-3 test id, R-4 value, R-5 units, R-7 flags, R-9 status."""

    sequence: str = ""
    universal_test_id: str = ""
    value: str = ""
    units: str = ""
    reference_range: str = ""
    abnormal_flags: str = ""
    abnormality_nature: str = ""
    status: str = ""  # F final, C correction, P preliminary, X cannot be done, ...
    normatives_changed_at: str = ""
    operator_id: str = ""
    started_at: str = ""
    completed_at: str = ""
    instrument_id: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("C")
class CommentRecord(Record):
    """LIS2-A2 section 11: comment on the preceding record. C-3 source, C-4 text, C-5 type."""

    sequence: str = ""
    source: str = ""  # P practice, L information system, I instrument
    comment_text: str = ""
    comment_type: str = ""  # G generic, T test name, P positive, N negative, I instrument flag
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("Q")
class QueryRecord(Record):
    """LIS2-A2 section 12: request information (host query). Q-3 starting range id, Q-13 status."""

    sequence: str = ""
    starting_range_id: str = ""  # patient id^specimen id^... or ALL
    ending_range_id: str = ""
    universal_test_id: str = ""
    time_limits_nature: str = ""
    beginning_at: str = ""
    ending_at: str = ""
    physician_name: str = ""
    physician_phone: str = ""
    user_field_1: str = ""
    user_field_2: str = ""
    request_status: str = ""  # O orders, X cancel / no information, ...
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("M")
class ManufacturerRecord(Record):
    """LIS2-A2 section 15: manufacturer information; fields after M-2 are the manufacturer's own."""

    sequence: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("S")
class ScientificRecord(Record):
    """LIS2-A2 section 14: scientific record."""

    sequence: str = ""
    analytical_method: str = ""
    instrumentation: str = ""
    reagents: str = ""
    units: str = ""
    quality_control: str = ""
    specimen_descriptor: str = ""
    reserved: str = ""
    container: str = ""
    specimen_id: str = ""
    analyte: str = ""
    result: str = ""
    result_units: str = ""
    collected_at: str = ""
    resulted_at: str = ""
    analytical_preprocessing: str = ""
    patient_diagnosis: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    patient_race: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@_record("L")
class TerminatorRecord(Record):
    """LIS2-A2 section 13: message terminator. L-3 termination code (N normal, T, R, E, Q, I, F)."""

    sequence: str = ""
    termination_code: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0


@dataclass(slots=True)
class UnknownRecord(Record):
    """A record whose type letter LIS2-A2 does not define; all its fields are kept in ``extra``."""

    type_code: str = ""
    extra: tuple[str, ...] = ()
    delimiters: Delimiters = _D
    width: int = 0

    @property
    def record_type(self) -> str:
        return self.type_code

    def values(self) -> list[str]:
        return list(self.extra)

    def encode(self, delimiters: Delimiters | None = None) -> str:
        d = delimiters or self.delimiters
        parts = self.values()
        if d != self.delimiters:
            parts = [self.delimiters.translate_field(p, d) for p in parts]
        line = [self.type_code, *parts]
        while len(line) > 1 and line[-1] == "":
            line.pop()
        if len(line) < self.width:
            line.extend([""] * (self.width - len(line)))
        return d.field.join(line)


RECORD_TYPES: dict[str, type[Record]] = {
    cls.TYPE: cls
    for cls in (HeaderRecord, PatientRecord, OrderRecord, ResultRecord, CommentRecord, QueryRecord,
                ManufacturerRecord, ScientificRecord, TerminatorRecord)
}
_NAMED_COUNT = {code: len(cls.FIELD_NAMES) for code, cls in RECORD_TYPES.items()}


def decode_text(data: bytes, encoding: str) -> str:
    """Bytes to text with the instrument's encoding; undecodable bytes raise :class:`RecordError`."""
    if encoding not in ENCODINGS:
        raise RecordError(f"unsupported text encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\r", 0, exc.start) + data.count(b"\n", 0, exc.start) + 1
        raise RecordError(
            f"byte 0x{data[exc.start]:02X} at offset {exc.start} (record {line}) is not valid {encoding}; "
            "check the analyser's text encoding in its profile"
        ) from exc


def _split_lines(text: str) -> list[str]:
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text.split("\r")


_HEADER_CACHE: dict[str, tuple[Delimiters, bool]] = {}
_FAST: dict[str, tuple[type[Record], int]] = {code: (cls, len(cls.FIELD_NAMES)) for code, cls in RECORD_TYPES.items()}


def _header_delimiters(line: str, warnings: list[str] | None) -> tuple[Delimiters, bool]:
    """Delimiters of a header line, and whether the doubled-repeat quirk (``H|\\\\^&``) is present.

    Some exported captures write the repeat delimiter twice (``H|\\\\^&``, a string-escaping artefact):
    four delimiter characters with the first two equal cannot be a valid declaration, so the doubled
    repeat delimiter is collapsed throughout the message.
    """
    key = line[:6]
    found = _HEADER_CACHE.get(key)
    if found is None:
        if len(line) >= 6 and line[2] == line[3] and line[5] != line[1] and line[3] != line[4]:
            found = Delimiters(field=line[1], repeat=line[2], component=line[4], escape=line[5]), True
        else:
            found = Delimiters.from_header(line), False
        if len(_HEADER_CACHE) < 64:
            _HEADER_CACHE[key] = found
    if found[1] and warnings is not None:
        warnings.append(f"header declares a doubled repeat delimiter ({line[2:6]}); collapsed to {line[2]}")
    return found


def _odd_record(parts: list[str], line: str, number: int, d: Delimiters) -> Record | None:
    """A line whose first field is not an upper-case LIS2-A2 type: blank, lower case, unknown or garbage."""
    if line.isspace():
        return None
    code = parts[0]
    if len(code) != 1 or not code.isalpha():
        raise RecordError(
            f"line {number} is not a LIS2-A2 record (expected a record type letter and {d.field!r}): {line[:30]!r}"
        )
    entry = _FAST.get(code.upper())
    if entry is None:
        return UnknownRecord(code, tuple(parts[1:]), d, len(parts))
    cls, n = entry
    return cls(*parts[1 : n + 1], extra=tuple(parts[n + 1 :]), delimiters=d, width=len(parts))  # type: ignore[call-arg]


def decode_message(data: str | bytes, encoding: str = "latin-1", *,
                   warnings: list[str] | None = None) -> list[Record]:
    """Decode LIS2-A2 records (one or several messages) into typed records.

    ``data`` may be text, unframed bytes, or a framed LIS1-A capture (de-framed first). Records may be
    separated by CR, LF or CRLF. Delimiters come from each H record and apply until the next H.
    Raises :class:`RecordError` for undecodable text or a line that is not a record.
    """
    if isinstance(data, bytes | bytearray):
        raw = bytes(data)
        if b"\x02" in raw and is_framed(raw):
            raw = deframe(raw)
        text = decode_text(raw, encoding)
    else:
        text = data
    records: list[Record] = []
    append = records.append
    fast = _FAST
    d = DEFAULT_DELIMITERS
    fs = d.field
    collapse = ""
    for number, line in enumerate(_split_lines(text), start=1):
        if not line:
            continue
        if line[0] == "H":
            d, doubled = _header_delimiters(line, warnings)
            fs = d.field
            collapse = d.repeat if doubled else ""
            if collapse:
                line = line.replace(collapse + collapse, collapse)
            parts = line.split(fs)
            if len(parts) > 1:
                parts[1] = d.definition
        else:
            if collapse:
                line = line.replace(collapse + collapse, collapse)
            parts = line.split(fs)
        entry = fast.get(parts[0])
        if entry is None:
            odd = _odd_record(parts, line, number, d)
            if odd is not None:
                append(odd)
            continue
        cls, n = entry
        width = len(parts)
        if width > n + 1:
            append(cls(*parts[1 : n + 1], tuple(parts[n + 1 :]), d, width))  # type: ignore[call-arg]
        else:
            del parts[0]
            append(cls(*parts, delimiters=d, width=width))  # type: ignore[call-arg]
    return records


def encode_message(records: Iterable[Record], delimiters: Delimiters | None = None,
                   encoding: str = "latin-1") -> bytes:
    """Encode records, each followed by CR (LIS2-A2 record terminator), in ``encoding``.

    ``delimiters`` defaults to those of the first header record. Text the encoding cannot represent
    raises :class:`RecordError` (fold Vietnamese names to ASCII for analysers that need it).
    """
    if encoding not in ENCODINGS:
        raise RecordError(f"unsupported text encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
    recs: Sequence[Record] = list(records)
    if delimiters is None:
        delimiters = next((r.delimiters for r in recs if isinstance(r, HeaderRecord)), DEFAULT_DELIMITERS)
    lines = []
    for number, rec in enumerate(recs, start=1):
        line = rec.encode(delimiters)
        try:
            lines.append(line.encode(encoding))
        except UnicodeEncodeError as exc:
            raise RecordError(
                f"record {number} ({rec.record_type}) has {line[exc.start]!r}, which {encoding} cannot encode"
            ) from exc
    return b"\r".join(lines) + b"\r" if lines else b""
