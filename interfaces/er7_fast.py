"""HL7 v2.5.1 ER7 segments written with plain string operations, exactly as hl7apy writes them.

Building a message with hl7apy parses every assigned field into an element tree: an ORU^R01 of 5 to 20 OBX costs
40 to 90 ms of CPU on the target machine (2 cores). This module writes the same bytes with string operations in
0.5 to 1.2 ms (``bench/oru_build.py``). It is the fast half of "validate each shape once with hl7apy, then fill
values on a fast path" (used by :mod:`interfaces.hl7_oru`); :func:`render` gives both halves what they need:

* a **shape** key: which segments, fields, repetitions, components and subcomponents are present (and the
  values of the fields named in ``structural``, e.g. OBX-2). Everything hl7apy's strict ``validate()`` checks
  (HL7 v2.5.1 message structure, child cardinality, datatypes) depends only on the shape, so a caller has hl7apy
  build and validate one message per shape;
* the **value rules** hl7apy applies in STRICT mode whenever a value is set, checked here on every message.
  They are the base datatype rules of hl7apy 1.3 for HL7 v2.5.1 (chapter 2A), per leaf of the field's
  reference structure (``hl7apy.v2_5_1.FIELDS``): ST and GTS at most 199 characters (2A.74, 2A.33), IS 20
  (2A.37), FT and TX 65536 (2A.31, 2A.77), ID unlimited (2A.35; its table is only a warning); SI an integer
  of at most 4 digits (2A.69), NM a decimal of at most 16 characters (2A.47); DT ``YYYY[MM[DD]]`` (2A.21), TM
  ``HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]`` (2A.75) and DTM ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``
  (2A.22) with a real calendar date and an offset within -1200..+1459. A value that breaks one raises
  :class:`ValueRuleError` naming the field, where hl7apy would raise while building.

Writing follows hl7apy 1.3 ``parser.parse_field`` then ``to_er7`` (HL7 v2.5.1 2.5-2.7 encoding rules):

* a field that was assigned is present even when it is empty: a segment is written up to its last assigned field;
* a base datatype field is one component; an OBX-5 (``varies``) keeps every component and subcomponent as given;
  in a composite field whitespace-only components (and subcomponents of composite components) are dropped, then
  trailing absent ones trimmed (``P-1^`` is written ``P-1``);
* repetitions are assigned one by one (:meth:`Segment.add`): a ``~`` inside a value is not a separator;
* SI, NM and date/time leaves are written back from their parsed value (as hl7apy does: ``01`` -> ``1``);
  textual leaves (ST, ID, IS, FT, TX, GTS, WD) get hl7apy's escaping: ``|`` ``~`` become ``\\F\\`` ``\\R\\``
  and a backslash that does not open or close one of ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\H\\ \\N\\`` becomes
  ``\\E\\`` (which is why :func:`interfaces.er7.escape` writes a line break as a space: hl7apy would send
  ``\\.br\\`` as the literal text ``\\E\\.br\\E\\``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Literal

from hl7apy.utils import get_date_info, get_datetime_info, get_timestamp_info
from hl7apy.v2_5_1 import FIELDS

VERSION = "2.5.1"
ENCODING_CHARACTERS = "^~\\&"

# Maximum length of textual leaves (hl7apy 1.3 base_datatypes, STRICT: MaxLengthReached); None: no limit.
TEXT_MAX_LENGTH: dict[str, int | None] = {
    "ST": 199, "GTS": 199, "WD": 199, "IS": 20, "FT": 65536, "TX": 65536, "ID": None,
}
SI_MAX_LENGTH = 4  # HL7 v2.5.1 2A.69 SI, as hl7apy checks it (digits of the integer, sign included)
NM_MAX_LENGTH = 16  # HL7 v2.5.1 2A.47 NM, as hl7apy checks it (characters of the decimal)

# hl7apy TextualDataType._escape_value: a backslash not part of an escape sequence is escaped again
_LONE_BACKSLASH = re.compile(r"(?<!\\[HNFSTRE])\\(?![HNFSTRE]\\)")


class ValueRuleError(ValueError):
    """A value breaks a rule hl7apy enforces while building (``where`` names the field, e.g. ``OBX-5.1``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")
        self.where = where


class Segment:
    """One segment as assigned ER7 strings (already escaped), per field number, one string per repetition."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[int, list[str]] = {}

    def __setitem__(self, number: int, value: str) -> None:
        """Assign the field (its first repetition), like ``segment.xxx_n = value`` in hl7apy."""
        self.fields[number] = [value]

    def add(self, number: int, value: str) -> None:
        """One more repetition, like ``segment.add_field("xxx_n").value = value`` in hl7apy."""
        self.fields.setdefault(number, []).append(value)


@dataclass(frozen=True, slots=True)
class _Component:
    datatype: str  # base datatype, or the composite datatype of the component
    subcomponents: tuple[str, ...]  # base datatypes of a composite component's subcomponents; () otherwise


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What hl7apy's HL7 v2.5.1 reference says of a field: base, ``varies`` (OBX-5) or composite."""

    kind: Literal["base", "varies", "composite"]
    datatype: str
    components: tuple[_Component, ...]


@cache
def field_spec(segment: str, number: int) -> FieldSpec:
    """The reference structure of ``SEGMENT-number`` in hl7apy's HL7 v2.5.1 tables."""
    ref = FIELDS[f"{segment}_{number}"]
    datatype = ref[2]
    if ref[0] == "leaf":
        return FieldSpec("varies" if datatype == "varies" else "base", datatype, ())
    components = []
    for _name, child, _cardinality, _cls in ref[1]:
        subs = tuple(sub[1][2] for sub in child[1]) if child[0] == "sequence" else ()
        components.append(_Component(child[2], subs))
    return FieldSpec("composite", datatype, tuple(components))


def render(segments: list[Segment], structural: frozenset[tuple[str, int]] = frozenset()) -> tuple[str, str]:
    """The ER7 text (segments ended by CR) and the shape key; raises :class:`ValueRuleError`.

    ``structural`` names fields whose value is part of the shape (``("OBX", 2)``: the value type of OBX-5).
    """
    lines: list[str] = []
    shape: list[str] = []
    for segment in segments:
        text, sig = _segment(segment, structural)
        lines.append(text)
        shape.append(sig)
    return "\r".join(lines) + "\r", "\r".join(shape)


def _segment(segment: Segment, structural: frozenset[tuple[str, int]]) -> tuple[str, str]:
    name = segment.name
    first = 3 if name == "MSH" else 1
    fields = segment.fields
    out = [f"MSH|{ENCODING_CHARACTERS}" if name == "MSH" else name]
    sig = [name]
    for number in range(first, max(fields, default=first - 1) + 1):
        values = fields.get(number)
        if values is None:
            out.append("")
            continue
        spec = field_spec(name, number)
        reps = []
        marks = []
        for rep, value in enumerate(values, start=1):
            where = f"{name}-{number}" if rep == 1 else f"{name}-{number}[{rep}]"
            text, mark = _field(spec, value, where)
            reps.append(text)
            marks.append(mark)
        out.append("~".join(reps))
        literal = f"={values[0]}" if (name, number) in structural else ""
        sig.append(f"{number}:{'~'.join(marks)}{literal}")
    return "|".join(out), "|".join(sig)


def _field(spec: FieldSpec, value: str, where: str) -> tuple[str, str]:
    """One repetition of a field: its ER7 text and its presence marks (``1`` present, empty absent)."""
    if spec.kind == "base":
        if "^" in value or "&" in value:
            raise ValueRuleError(where, f"is a single {spec.datatype} value: it cannot hold components")
        return _leaf(spec.datatype, value, where), "1" if value else "0"
    parts = value.split("^")
    if spec.kind == "varies":
        texts, marks = [], []
        for index, part in enumerate(parts, start=1):
            subs = part.split("&")
            texts.append("&".join(_leaf("ST", sub, f"{where}.{index}") for sub in subs))
            marks.append("&".join("1" if sub else "0" for sub in subs))
        return "^".join(texts), "^".join(marks)
    texts, marks = [], []
    for index, part in enumerate(parts, start=1):
        if not part.strip():
            texts.append("")
            marks.append("")
            continue
        if index > len(spec.components):
            raise ValueRuleError(where, f"has {index} components, more than the {len(spec.components)} of "
                                        f"{spec.datatype}")
        text, mark = _component(spec.components[index - 1], part, f"{where}.{index}")
        texts.append(text)
        marks.append(mark)
    keep = _present_length(marks)
    return "^".join(texts[:keep]), "^".join(marks[:keep])


def _component(component: _Component, value: str, where: str) -> tuple[str, str]:
    if not component.subcomponents:
        if "&" in value:
            raise ValueRuleError(where, f"is a single {component.datatype} value: it cannot hold subcomponents")
        return _leaf(component.datatype, value, where), "1"
    texts, marks = [], []
    for index, sub in enumerate(value.split("&"), start=1):
        present = bool(sub.strip())
        if index > len(component.subcomponents):  # hl7apy keeps an extra subcomponent even when blank
            raise ValueRuleError(where, f"has {index} subcomponents, more than the {len(component.subcomponents)} "
                                        f"of {component.datatype}")
        texts.append(_leaf(component.subcomponents[index - 1], sub, f"{where}.{index}") if present else "")
        marks.append("1" if present else "")
    keep = _present_length(marks)  # the component itself is present (not blank) even if no subcomponent is
    return "&".join(texts[:keep]), "1" + "&".join(marks[:keep])


def _present_length(marks: list[str]) -> int:
    """How many children remain once trailing absent ones are trimmed (hl7apy ``_remove_trailing``)."""
    keep = len(marks)
    while keep and not marks[keep - 1]:
        keep -= 1
    return keep


def _leaf(datatype: str, value: str, where: str) -> str:
    """A leaf value checked against its base datatype rule and written as hl7apy writes it."""
    if not value:
        return value
    if datatype in TEXT_MAX_LENGTH:
        limit = TEXT_MAX_LENGTH[datatype]
        if limit is not None and len(value) > limit:
            raise ValueRuleError(where, f"is {len(value)} characters long, more than the {limit} of {datatype}")
        if "\\" in value or "|" in value or "~" in value:
            value = _LONE_BACKSLASH.sub(r"\\E\\", value.replace("|", "\\F\\").replace("~", "\\R\\"))
        return value
    rule = _VALUE_RULES.get(datatype)
    if rule is None:
        raise ValueRuleError(where, f"has datatype {datatype}, which the fast path does not write")
    try:
        return rule(value)
    except ValueError as exc:
        raise ValueRuleError(where, f"{value!r} is not a valid {datatype}: {exc}") from None


def _si(value: str) -> str:
    number = str(int(value))
    if len(number) > SI_MAX_LENGTH:
        raise ValueError(f"more than {SI_MAX_LENGTH} digits")
    return number


def _nm(value: str) -> str:
    try:
        number = str(Decimal(value))
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if len(number) > NM_MAX_LENGTH:
        raise ValueError(f"more than {NM_MAX_LENGTH} characters")
    return number


def _dt(value: str) -> str:
    parsed, fmt = get_date_info(value)
    return str(parsed.strftime(fmt))


def _tm(value: str) -> str:
    parsed, fmt, offset, precision = get_timestamp_info(value)
    return _time_text(parsed, fmt, offset, precision)


def _dtm(value: str) -> str:
    parsed, fmt, offset, precision = get_datetime_info(value)
    return _time_text(parsed, fmt, offset, precision)


def _time_text(parsed: datetime, fmt: str, offset: str, precision: int) -> str:
    """hl7apy ``TM.to_er7``: the fraction cut to its precision, then the offset."""
    text = parsed.strftime(fmt)
    if "%f" in fmt:
        text = text[: -(6 - precision)]
    return text + offset


_VALUE_RULES: dict[str, Callable[[str], str]] = {"SI": _si, "NM": _nm, "DT": _dt, "TM": _tm, "DTM": _dtm}
