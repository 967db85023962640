"""Pending LIS orders -> what an analyser understands (instrument test codes), for host queries and pushes.

``lis.services.host_query`` returns LIS test codes (and the lab's own instrument code when a
``TestCodeMap`` row exists); the profile's code map is drivers-side knowledge, so the translation is here:

1. the lab's mapping for this instrument (``TestCodeMap``) wins;
2. else the profile's code map inverted (LIS test -> instrument code; the first instrument code wins);
3. else, for a profile without any code map (``generic-astm``, ``generic-hl7``: instrument code = LIS code),
   the LIS code itself.

Tests without an instrument code are left out (the analyser cannot run them); a specimen left with no test
gets the "no order" answer, like an unknown specimen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from drivers.astm.orders import OrderDescription as AstmOrder
from drivers.hl7.replies import OrderDescription as Hl7Order
from drivers.profile import Profile
from lis.db import Database
from lis.services.host_query import PendingSpecimen, pending_orders, pending_specimen_ids

_INVERSE: dict[int, tuple[Profile, dict[str, str]]] = {}


def _inverse(profile: Profile) -> dict[str, str]:
    cached = _INVERSE.get(id(profile))
    if cached is not None and cached[0] is profile:
        return cached[1]
    inverse: dict[str, str] = {}
    for instrument_code, mapping in profile.codes.items():
        if mapping.test:
            inverse.setdefault(mapping.test, instrument_code)
    _INVERSE[id(profile)] = (profile, inverse)
    return inverse


def instrument_codes(specimen: PendingSpecimen, profile: Profile) -> tuple[str, ...]:
    """The instrument test codes of ``specimen``'s pending tests (see module docstring for the rules)."""
    inverse = _inverse(profile)
    codes: list[str] = []
    for test in specimen.tests:
        code = test.instrument_code or inverse.get(test.test_code) or (None if profile.codes else test.test_code)
        if code and code not in codes:
            codes.append(code)
    return tuple(codes)


def astm_order(specimen: PendingSpecimen, profile: Profile) -> AstmOrder | None:
    codes = instrument_codes(specimen, profile)
    if not codes:
        return None
    return AstmOrder(specimen_id=specimen.specimen_id, test_codes=codes, patient_id=specimen.patient_id,
                     patient_name=specimen.patient_name, sex=specimen.sex, birth_date=specimen.birth_date,
                     priority=specimen.priority, specimen_type=specimen.specimen_type.upper())


_HL7_SPECIMEN_TYPES = {"serum": "SER", "plasma": "PLAS", "blood-edta": "BLD", "blood": "BLD", "urine": "UR",
                       "blood-citrate": "PLAS", "blood-fluoride": "PLAS"}


def hl7_order(specimen: PendingSpecimen, profile: Profile) -> Hl7Order | None:
    codes = instrument_codes(specimen, profile)
    if not codes:
        return None
    return Hl7Order(specimen_id=specimen.specimen_id, test_codes=codes, patient_id=specimen.patient_id,
                    patient_name=specimen.patient_name, sex=specimen.sex, birth_date=specimen.birth_date,
                    priority=specimen.priority,
                    specimen_type=_HL7_SPECIMEN_TYPES.get(specimen.specimen_type.lower(), ""),
                    collected_at=specimen.collected_at)


@dataclass(slots=True)
class QueryAnswer:
    """Specimens with something to run, and specimen ids to answer with "no order"."""

    found: list[PendingSpecimen] = field(default_factory=list)
    no_order: list[str] = field(default_factory=list)


def _lookup(db: Database, instrument: str, profile: Profile, specimen_ids: list[str], all_pending: bool,
            limit: int) -> QueryAnswer:
    with db.read() as session:
        if all_pending and not specimen_ids:
            specimen_ids = pending_specimen_ids(session, limit)
        pending = pending_orders(session, instrument, specimen_ids)
    answer = QueryAnswer(no_order=list(pending.unknown))
    for specimen in pending.found:
        if instrument_codes(specimen, profile):
            answer.found.append(specimen)
        else:
            answer.no_order.append(specimen.specimen_id)
    return answer


async def lookup(db: Database, instrument: str, profile: Profile, specimen_ids: list[str], *,
                 all_pending: bool = False, limit: int = 50) -> QueryAnswer:
    """Pending orders for a host query, read in a worker thread (blocking database call)."""
    return await asyncio.to_thread(_lookup, db, instrument, profile, list(specimen_ids), all_pending, limit)
