"""Orders from the EMR as FHIR R4 ``ServiceRequest`` (issue 7.4), posted to ``/api/v1/fhir/ServiceRequest``.

The resource is validated with the ``fhir.resources`` R4B model, then read as one LIS order:

* patient: a contained ``Patient`` (``subject`` = ``#id``) with CCCD / BHYT / hospital-id identifiers, or a
  logical ``subject.identifier`` of a patient the LIS already knows;
* tests: ``code`` and every ``orderDetail`` (a LOINC coding, or the LIS code in any other system);
* specimen id: the contained ``Specimen`` referenced by ``specimen`` (``accessionIdentifier``, else its first
  identifier); placer number: the ``identifier`` of type ``PLAC`` (else the first);
* ``priority`` stat/asap/urgent → stat; ``requester.display`` → ordering clinician; ``encounter.identifier`` →
  visit code (MA_LK).

Errors come back as an ``OperationOutcome`` (FHIR R4 3.1.0.4.1): 400 for an invalid resource, 422 for content the
LIS cannot act on (an unknown test code, kept as ``needs_attention`` like the HL7 path).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from interfaces.hl7_inbound import InboundError, InboundMessage, MshInfo, OrderGroup, TestRef, VisitData
from lis.services.patients import PatientData

LOINC = "http://loinc.org"
_CCCD_HINTS = ("cccd", "national", "nni", "citizen")
_BHYT_HINTS = ("bhyt", "insurance", "health-card")


def operation_outcome(text: str, code: str = "invalid", severity: str = "error",
                      expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": text}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class FhirOrderError(InboundError):
    """The ServiceRequest cannot be used; ``status`` is the HTTP status, ``expression`` the FHIRPath at fault."""

    def __init__(self, message: str, status: int = 422, expression: str | None = None) -> None:
        super().__init__(message, 101 if status == 422 else 102, expression or "")
        self.status = status
        self.expression = expression


def validate_service_request(body: bytes) -> dict[str, Any]:
    """Parse and validate with the R4B model; raises :class:`FhirOrderError` (400) naming the element."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirOrderError(f"body is not JSON: {exc}", 400) from exc
    if not isinstance(data, dict) or data.get("resourceType") != "ServiceRequest":
        raise FhirOrderError("expected a ServiceRequest resource", 400, "ServiceRequest")
    try:
        ServiceRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "ServiceRequest." + ".".join(str(p) for p in err.get("loc", ()))
        raise FhirOrderError(f"{where}: {err.get('msg')}", 400, where) from exc
    return data


def _contained(data: dict[str, Any], ref: str | None, rtype: str) -> dict[str, Any] | None:
    if not ref or not ref.startswith("#"):
        return None
    return next((r for r in data.get("contained", []) if r.get("id") == ref[1:] and r.get("resourceType") == rtype),
                None)


def _kind(identifier: dict[str, Any]) -> str:
    codes = {c.get("code", "").upper() for c in (identifier.get("type") or {}).get("coding", [])}
    system = (identifier.get("system") or "").lower()
    if codes & {"NI", "NNVNM", "CCCD"} or any(h in system for h in _CCCD_HINTS):
        return "cccd"
    if codes & {"HC", "SB", "BHYT"} or any(h in system for h in _BHYT_HINTS):
        return "bhyt"
    return "mrn"


def _patient(data: dict[str, Any]) -> PatientData:
    subject = data.get("subject") or {}
    resource = _contained(data, subject.get("reference"), "Patient")
    identifiers = (resource or {}).get("identifier", []) or ([subject["identifier"]] if subject.get("identifier")
                                                              else [])
    found: dict[str, str] = {}
    for ident in identifiers:
        if ident.get("value"):
            found.setdefault(_kind(ident), ident["value"])
    if not found:
        raise FhirOrderError("subject: a contained Patient or subject.identifier is required", 422, "subject")
    name = subject.get("display", "")
    gender, birth = "unknown", None
    address = ""
    if resource is not None:
        names = resource.get("name") or [{}]
        n = names[0]
        name = n.get("text") or " ".join([n.get("family", ""), *n.get("given", [])]).strip() or name
        gender = resource.get("gender", "unknown")
        birth = resource.get("birthDate")
        address = ((resource.get("address") or [{}])[0]).get("text", "")
    return PatientData(
        name=name or "(unknown)", national_id=found.get("cccd"), insurance_number=found.get("bhyt"),
        mrn=found.get("mrn"), sex={"male": "M", "female": "F"}.get(gender, "U"),
        birth_date=date.fromisoformat(birth) if birth and len(birth) == 10 else None, address=address,
    )


def _tests(data: dict[str, Any]) -> list[TestRef]:
    refs = []
    for concept in [data.get("code") or {}, *(data.get("orderDetail") or [])]:
        codings = concept.get("coding") or []
        if not codings:
            continue
        loinc = next((c for c in codings if c.get("system") == LOINC and c.get("code")), None)
        local = next((c for c in codings if c.get("system") != LOINC and c.get("code")), None)
        first, second = (loinc, local) if loinc else (local, None)
        if first is None:
            continue
        refs.append(TestRef(first["code"], first.get("display", ""), "LN" if first is loinc else "L",
                            second["code"] if second else "", "L" if second else ""))
    if not refs:
        raise FhirOrderError("code: at least one coded test is required", 422, "ServiceRequest.code")
    return refs


def read_service_request(data: dict[str, Any]) -> tuple[InboundMessage, str]:
    """The ServiceRequest as an :class:`InboundMessage` (one order) and its idempotency key (placer number)."""
    identifiers = data.get("identifier") or []
    placer = next((i for i in identifiers if any(c.get("code") == "PLAC" for c in
                                                 (i.get("type") or {}).get("coding", []))), None)
    placer = placer or (identifiers[0] if identifiers else None)
    if placer is None or not placer.get("value"):
        raise FhirOrderError("identifier: the placer order number is required", 422, "ServiceRequest.identifier")
    specimen_id = ""
    for ref in data.get("specimen") or []:
        spec = _contained(data, ref.get("reference"), "Specimen")
        if spec is not None:
            specimen_id = (spec.get("accessionIdentifier") or {}).get("value") or \
                ((spec.get("identifier") or [{}])[0]).get("value", "")
        elif (ref.get("identifier") or {}).get("value"):
            specimen_id = ref["identifier"]["value"]
        if specimen_id:
            break
    if not specimen_id:
        raise FhirOrderError("specimen: a contained Specimen with accessionIdentifier is required", 422,
                             "ServiceRequest.specimen")
    visit = None
    enc = (data.get("encounter") or {}).get("identifier") or {}
    if enc.get("value"):
        visit = VisitData(enc["value"])
    group = OrderGroup(
        control="NW" if data.get("status") in ("active", "draft", None) else "CA", placer_number=placer["value"],
        specimen_id=specimen_id, tests=_tests(data),
        priority="stat" if data.get("priority") in ("stat", "asap", "urgent") else "routine",
        ordering_clinician=(data.get("requester") or {}).get("display", ""),
        clinical_info="; ".join(n.get("text", "") for n in data.get("note") or [])[:1000],
    )
    msh = MshInfo(control_id=f"SR:{placer.get('system', '')}|{placer['value']}"[:100], message_code="FHIR",
                  trigger="ServiceRequest", structure="", version="R4", sending_application="", sending_facility="",
                  receiving_application="", receiving_facility="", processing_id="P")
    return InboundMessage(msh, _patient(data), visit, [group]), msh.control_id


def parse_service_request(raw: bytes) -> InboundMessage:
    """Bytes of a ServiceRequest → :class:`InboundMessage` (the parser of the ``fhir-api`` inbound source)."""
    return read_service_request(validate_service_request(raw))[0]
