"""What a driver hands to the LIS core after parsing one analyser message.

Drivers (ASTM LIS2-A2, HL7 v2) turn the raw bytes of one message into an :class:`InstrumentReport`;
the ingest service (``lis.services.ingest``) matches it to specimens, orders and catalogue tests and
stores it. This module is the seam between ``drivers/`` and ``lis/``: plain dataclasses, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MessageKind(StrEnum):
    """What the message asked of the LIS."""

    RESULTS = "results"  # results and/or QC observations to store
    QUERY = "query"  # host query (ASTM Q record, HL7 QBP^Q11 / QRY^Q02): the instrument wants orders
    OTHER = "other"  # understood but carries nothing to store (e.g. an empty H/L transfer, a status message)


@dataclass(slots=True)
class Observation:
    """One analyte result or QC observation (ASTM R record, HL7 OBX).

    ``value`` is the text exactly as the analyser sent it, after unescaping and decoding.
    ``sequence`` is the position of the observation in the message (0-based, over the whole message);
    together with the raw message id it makes re-processing idempotent.
    """

    sequence: int
    instrument_test_code: str
    value: str
    units: str = ""
    reference_range: str = ""
    abnormal_flags: str = ""  # as sent, repeats joined with "~" (e.g. "L~N")
    result_status: str = ""  # F final, C correction, P preliminary, X cannot be done (as sent)
    observed_at: datetime | None = None  # timezone-aware when known (naive analyser times are local)
    test_name: str = ""
    loinc: str = ""  # LOINC when the instrument or the profile names one
    mapped_test_code: str | None = None  # LIS catalogue code from the profile's code map, if any
    unit_override: str | None = None  # UCUM unit the profile says this code really uses
    operator: str = ""
    instrument_id: str = ""  # R-14 / OBX-18 (instrument or module id)
    comment: str = ""
    dilution: str = ""


@dataclass(slots=True)
class Attachment:
    """Non-result payload attached to a specimen (histogram, scattergram, image): stored, not a result."""

    name: str
    media_type: str
    data: bytes
    encoding_note: str = ""


@dataclass(slots=True)
class SpecimenReport:
    """One specimen (or QC sample) and its observations (ASTM P/O/R group, HL7 PID/OBR/SPM/OBX group)."""

    specimen_id: str
    observations: list[Observation] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    is_qc: bool = False
    control_material: str = ""
    control_lot: str = ""
    control_level: str = ""
    patient_id: str = ""  # as sent by the instrument (informational: the LIS trusts its own orders)
    patient_name: str = ""
    patient_sex: str = ""
    patient_birth_date: str = ""
    rack: str = ""
    position: str = ""
    comments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HostQuery:
    """A host query: the instrument asks which tests to run for these specimen ids."""

    specimen_ids: list[str]
    all_pending: bool = False  # "ALL" request (ASTM Q-3 = ALL, HL7 QRD ALL)
    query_id: str = ""  # HL7 QPD-2 / QRD-4, echoed in the answer


@dataclass(slots=True)
class InstrumentReport:
    """The parsed content of one raw message from one instrument."""

    kind: MessageKind
    specimens: list[SpecimenReport] = field(default_factory=list)
    queries: list[HostQuery] = field(default_factory=list)
    sender: str = ""  # instrument name/serial from the ASTM H record or HL7 MSH-3/MSH-4
    control_id: str = ""  # HL7 MSH-10 or ASTM H-3 message control id, when present
    message_type: str = ""  # e.g. "ORU^R01", "OUL^R22", "ASTM"
    sent_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)  # oddities that did not stop parsing

    @property
    def observation_count(self) -> int:
        return sum(len(s.observations) for s in self.specimens)


class MessageParseError(ValueError):
    """The bytes are not a message this driver understands; the text says why, for the quarantine view."""
