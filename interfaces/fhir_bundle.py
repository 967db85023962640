"""FHIR R4 ``transaction`` Bundle for one released report (STANDARDS.md "HL7 FHIR R4 (EMR delivery)").

Entries (FHIR R4 3.1.0.11 transaction processing; 3.1.0.8 conditional create / update):

* ``Patient`` — conditional create on its identifiers (CCCD first, then BHYT, then hospital id);
* ``ServiceRequest`` — conditional create on the filler number (placer number carried too);
* ``Specimen`` — conditional create on the specimen id (also ``accessionIdentifier``);
* ``Observation`` per analyte — conditional *update* on ``order filler number + test code``, so a correction
  updates the same Observation (status ``corrected``) instead of adding a second one; LOINC ``code``,
  ``valueQuantity`` with UCUM (``http://unitsofmeasure.org``), ``referenceRange``, ``interpretation``
  (v3-ObservationInterpretation);
* ``DiagnosticReport`` — conditional update on the filler number; status ``final`` / ``amended`` /
  ``corrected``; ``basedOn``, ``specimen``, ``result``, ``issued``, ``resultsInterpreter``; the signed PDF
  in ``presentedForm``.

Every identifier is stable across retries, so re-sending the same Bundle never creates a duplicate. Each
resource and the Bundle are validated with the ``fhir.resources`` R4B models before anything is sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from interfaces.report_data import ReportData, ReportLine

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*[-–]\s*([+-]?\d+(?:\.\d+)?)\s*$")
_INTERP = {"L": "L", "H": "H", "LL": "LL", "HH": "HH", "N": "N", "A": "A", "AA": "AA", "<": "<", ">": ">"}


class FhirBuildError(ValueError):
    """The report cannot be expressed as valid FHIR R4 (the message names the resource and element)."""


@dataclass(frozen=True, slots=True)
class FhirSystems:
    """Identifier systems (URIs). The defaults follow the community VN Core naming; confirm them with the EMR."""

    cccd: str = "https://fhir.vn/sid/cccd"
    bhyt: str = "https://fhir.vn/sid/bhyt"
    mrn: str = "urn:openlis:mrn"
    placer: str = "urn:openlis:placer"
    filler: str = "urn:openlis:filler"
    specimen: str = "urn:openlis:specimen"
    observation: str = "urn:openlis:observation"
    local_code: str = "urn:openlis:test"
    message: str = "urn:openlis:message"
    timezone: str = "Asia/Ho_Chi_Minh"


def _instant(value: datetime, tz: str) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


def _urn(*parts: object) -> str:
    """A deterministic ``urn:uuid`` for an entry, so a rebuilt Bundle is byte-identical."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:16]
    return f"urn:uuid:{uuid.UUID(bytes=digest, version=4)}"


def _validated(resource: dict[str, Any]) -> dict[str, Any]:
    rtype = resource["resourceType"]
    try:
        get_fhir_model_class(rtype).model_validate(resource)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise FhirBuildError(f"{rtype}.{where}: {err.get('msg')}") from exc
    return resource


def _identifiers(report: ReportData, s: FhirSystems) -> list[dict[str, Any]]:
    ids: list[dict[str, Any]] = []
    if report.national_id:
        ids.append({"use": "official", "type": {"coding": [{"system": V2_0203, "code": "NI"}]},
                    "system": s.cccd, "value": report.national_id})
    if report.insurance_number:
        ids.append({"type": {"coding": [{"system": V2_0203, "code": "HC"}]}, "system": s.bhyt,
                    "value": report.insurance_number})
    if report.mrn:
        ids.append({"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": s.mrn, "value": report.mrn})
    if not ids:
        ids.append({"system": s.mrn, "value": f"LIS{report.patient_id}"})
    return ids


def _patient(report: ReportData, s: FhirSystems) -> dict[str, Any]:
    parts = report.patient_name.split(None, 1)
    name: dict[str, Any] = {"use": "official", "text": report.patient_name}
    if parts:
        name["family"] = parts[0]
        if len(parts) > 1:
            name["given"] = [parts[1]]
    resource: dict[str, Any] = {
        "resourceType": "Patient", "identifier": _identifiers(report, s), "name": [name],
        "gender": {"M": "male", "F": "female"}.get(report.sex, "unknown"),
    }
    if report.birth_date:
        resource["birthDate"] = report.birth_date.isoformat()
    if report.address:
        resource["address"] = [{"text": report.address}]
    return resource


def _quantity_or_string(line: ReportLine) -> dict[str, Any]:
    value = line.value.strip()
    if _NUMBER.match(value):
        qty: dict[str, Any] = {"value": float(value) if "." in value else int(value)}
        if line.units:
            qty.update({"unit": line.units, "system": UCUM, "code": line.units})
        return {"valueQuantity": qty}
    return {"valueString": value} if value else {}


def _reference_range(line: ReportLine) -> list[dict[str, Any]]:
    if not line.reference_range:
        return []
    match = _RANGE.match(line.reference_range)
    if not match:
        return [{"text": line.reference_range}]
    rng: dict[str, Any] = {"text": line.reference_range}
    for key, raw in (("low", match.group(1)), ("high", match.group(2))):
        q: dict[str, Any] = {"value": float(raw)}
        if line.units:
            q.update({"unit": line.units, "system": UCUM, "code": line.units})
        rng[key] = q
    return [rng]


def _observation(report: ReportData, line: ReportLine, refs: dict[str, str], s: FhirSystems,
                 interpreter: dict[str, Any] | None) -> dict[str, Any]:
    coding = []
    if line.loinc:
        coding.append({"system": LOINC, "code": line.loinc, "display": line.name_en or line.test_code})
    coding.append({"system": s.local_code, "code": line.test_code, "display": line.name_vi or line.test_code})
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": s.observation, "value": f"{report.filler_number}-{line.test_code}"}],
        "basedOn": [{"reference": refs["sr"]}],
        "status": "corrected" if line.corrected else "final",  # an unchanged analyte stays final
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": coding, "text": line.name_vi or line.test_code},
        "subject": {"reference": refs["patient"]},
        "specimen": {"reference": refs["specimen"]},
        **_quantity_or_string(line),
    }
    if line.observed_at:
        obs["effectiveDateTime"] = _instant(line.observed_at, s.timezone)
    if line.released_at:
        obs["issued"] = _instant(line.released_at, s.timezone)
    if interpreter:
        obs["performer"] = [interpreter]
    flags = [_INTERP[f] for f in re.split(r"[\s,~;]+", line.flags) if f in _INTERP]
    if flags:
        obs["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": f}]} for f in flags]
    ranges = _reference_range(line)
    if ranges:
        obs["referenceRange"] = ranges
    if line.comment:
        obs["note"] = [{"text": line.comment}]
    return obs


def build_bundle(report: ReportData, message_id: str, systems: FhirSystems, *, now: datetime,
                 pdf: bytes | None = None) -> bytes:
    """The transaction Bundle of ``report`` as JSON bytes, validated with the R4B models."""
    s = systems
    key = report.filler_number
    refs = {"patient": _urn("patient", report.patient_id), "sr": _urn("sr", key),
            "specimen": _urn("specimen", key), "dr": _urn("dr", key)}
    entries: list[dict[str, Any]] = []

    patient = _validated(_patient(report, s))
    first_id = patient["identifier"][0]
    entries.append({"fullUrl": refs["patient"], "resource": patient, "request": {
        "method": "POST", "url": "Patient", "ifNoneExist": f"identifier={first_id['system']}|{first_id['value']}"}})

    sr_ids = [{"type": {"coding": [{"system": V2_0203, "code": "FILL"}]}, "system": s.filler, "value": key}]
    if report.placer_number:
        sr_ids.insert(0, {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "system": s.placer,
                          "value": report.placer_number})
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest", "identifier": sr_ids, "status": "completed", "intent": "order",
        "priority": "stat" if report.priority == "stat" else "routine",
        "code": {"coding": [{"system": LOINC, "code": "11502-2", "display": "Laboratory report"}]},
        "subject": {"reference": refs["patient"]}, "authoredOn": _instant(report.ordered_at, s.timezone),
    }
    if report.ordering_clinician:
        sr["requester"] = {"display": report.ordering_clinician}
    entries.append({"fullUrl": refs["sr"], "resource": _validated(sr), "request": {
        "method": "POST", "url": "ServiceRequest", "ifNoneExist": f"identifier={s.filler}|{key}"}})

    spec = report.specimens[0] if report.specimens else None
    barcode = spec.barcode if spec else (report.lines[0].specimen_barcode if report.lines else key)
    specimen: dict[str, Any] = {
        "resourceType": "Specimen", "identifier": [{"system": s.specimen, "value": barcode}],
        "accessionIdentifier": {"system": s.specimen, "value": barcode},
        "subject": {"reference": refs["patient"]}, "request": [{"reference": refs["sr"]}],
    }
    if spec:
        specimen["type"] = {"text": spec.specimen_type}
        if spec.collected_at:
            specimen["collection"] = {"collectedDateTime": _instant(spec.collected_at, s.timezone)}
        if spec.received_at:
            specimen["receivedTime"] = _instant(spec.received_at, s.timezone)
    entries.append({"fullUrl": refs["specimen"], "resource": _validated(specimen), "request": {
        "method": "POST", "url": "Specimen", "ifNoneExist": f"identifier={s.specimen}|{barcode}"}})

    interpreter = None
    if report.validator:
        interpreter = {"display": report.validator_name or report.validator,
                       "identifier": {"system": "urn:openlis:user", "value": report.validator}}
    obs_refs = []
    for line in report.lines:
        ref = _urn("obs", key, line.test_code)
        obs = _validated(_observation(report, line, refs, s, interpreter))
        ident = obs["identifier"][0]
        entries.append({"fullUrl": ref, "resource": obs, "request": {
            "method": "PUT", "url": f"Observation?identifier={ident['system']}|{ident['value']}"}})
        obs_refs.append({"reference": ref})

    dr: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": s.filler, "value": key}],
        "basedOn": [{"reference": refs["sr"]}], "status": report.status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
        "code": {"coding": [{"system": LOINC, "code": "11502-2", "display": "Laboratory report"}]},
        "subject": {"reference": refs["patient"]}, "issued": _instant(report.released_at, s.timezone),
        "specimen": [{"reference": refs["specimen"]}], "result": obs_refs,
    }
    if interpreter:
        dr["resultsInterpreter"] = [interpreter]
    if pdf is not None:
        dr["presentedForm"] = [{
            "contentType": "application/pdf", "language": "vi", "data": base64.b64encode(pdf).decode("ascii"),
            "title": f"Phiếu kết quả xét nghiệm {key} v{report.version}",
            "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),  # FHIR Attachment.hash is SHA-1
            "creation": _instant(report.released_at, s.timezone),
        }]
    entries.append({"fullUrl": refs["dr"], "resource": _validated(dr), "request": {
        "method": "PUT", "url": f"DiagnosticReport?identifier={s.filler}|{key}"}})

    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "identifier": {"system": s.message, "value": message_id},
        "timestamp": _instant(now, s.timezone), "entry": entries,
    }
    _validated(bundle)
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
