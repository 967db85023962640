"""Calculated tests, computed when their inputs are present and the test is ordered but not measured:

* ``EGFR`` — CKD-EPI 2021 creatinine equation (race-free; Inker et al., NEJM 2021), from serum creatinine
  in µmol/L, age (≥ 18 years) and sex (M/F):
  ``142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200 × 0.9938^age × 1.012 [female]``, Scr in mg/dL
  (µmol/L ÷ 88.42), κ = 0.7 (F) / 0.9 (M), α = −0.241 (F) / −0.302 (M).
* ``LDL`` — Friedewald in mmol/L: ``CHOL − HDL − TG/2.2``, only when TG < 4.5 mmol/L.

A calculated result is a ``Result`` row (instrument ``calculated``, ``instrument_test_code`` the formula)
whose inputs are named in ``calculated_input``; it then goes through evaluation like any other result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import insert, select
from sqlmodel import Session

from lis.models import CalculatedInput, Order, OrderTest, Patient, Result, ResultStatus, Specimen
from lis.services.workflow.evaluation import CALCULATED_INSTRUMENT, NOT_COMPARABLE
from lis.services.workflow.flags import unit_matches
from lis.services.workflow.policies import PolicySnapshot
from lis.services.workflow.ranges import LOCAL_TZ

_R = Result.__table__  # type: ignore[attr-defined]
MG_DL_PER_UMOL_L = 1 / 88.42
TG_LIMIT_FRIEDEWALD = 4.5  # mmol/L


@dataclass(frozen=True, slots=True)
class Formula:
    test_code: str
    name: str
    inputs: tuple[str, ...]


FORMULAS = {
    "EGFR": Formula("EGFR", "CKD-EPI-2021", ("CREA",)),
    "LDL": Formula("LDL", "FRIEDEWALD", ("CHOL", "HDL", "TG")),
}


def egfr_ckd_epi_2021(creatinine_umol_l: float, age_years: float, sex: str) -> float | None:
    """eGFR in mL/min/1.73 m² (CKD-EPI 2021); None for children, unknown sex or a non-positive creatinine."""
    if sex not in ("M", "F") or age_years < 18 or creatinine_umol_l <= 0:
        return None
    scr = creatinine_umol_l * MG_DL_PER_UMOL_L
    kappa, alpha = (0.7, -0.241) if sex == "F" else (0.9, -0.302)
    ratio = scr / kappa
    value = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.200 * 0.9938 ** age_years
    return value * 1.012 if sex == "F" else value


def ldl_friedewald(chol: float, hdl: float, tg: float) -> float | None:
    """LDL cholesterol (mmol/L) by Friedewald; None when TG ≥ 4.5 mmol/L (the formula is invalid there)."""
    if tg >= TG_LIMIT_FRIEDEWALD:
        return None
    return chol - hdl - tg / 2.2


def _age_years(birth: date | None, at: datetime) -> int | None:
    """Age in completed years on the local calendar (as the equation's published calculators use it)."""
    if birth is None:
        return None
    today = at.astimezone(LOCAL_TZ).date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def compute_calculated(session: Session, order_ids: Iterable[int], policies: PolicySnapshot,
                       now: datetime) -> list[int]:
    """Create the calculated results whose inputs are now present; returns the new result ids."""
    orders = sorted(set(order_ids))
    codes = [c for c in FORMULAS if c in policies.tests]
    if not orders or not codes:
        return []
    conn = session.connection()
    targets = conn.execute(
        select(OrderTest.id, OrderTest.order_id, OrderTest.specimen_id, OrderTest.test_code)
        .where(OrderTest.order_id.in_(orders), OrderTest.test_code.in_(codes),  # type: ignore[attr-defined]
               OrderTest.status == "ordered")
    ).all()
    if not targets:
        return []
    wanted_orders = sorted({t.order_id for t in targets})
    specimens = {s.id: s for s in conn.execute(
        select(Specimen.id, Specimen.order_id, Specimen.barcode, Specimen.collected_at)
        .where(Specimen.order_id.in_(wanted_orders))  # type: ignore[attr-defined]
    ).all()}
    people = {o.id: o for o in conn.execute(
        select(Order.id, Order.patient_id, Patient.sex, Patient.birth_date)
        .join(Patient, Patient.id == Order.patient_id).where(Order.id.in_(wanted_orders))  # type: ignore[arg-type,union-attr]
    ).all()}
    input_codes = sorted({c for f in FORMULAS.values() for c in f.inputs})
    latest: dict[tuple[int, str], object] = {}
    if specimens:
        for r in conn.execute(
            select(_R.c.id, _R.c.specimen_id, _R.c.test_code, _R.c.value_numeric, _R.c.units, _R.c.observed_at,
                   _R.c.received_at)
            .where(_R.c.specimen_id.in_(list(specimens)), _R.c.test_code.in_(input_codes),
                   _R.c.value_numeric.is_not(None), _R.c.status.not_in(NOT_COMPARABLE), _R.c.is_qc.is_(False))
            .order_by(_R.c.id)
        ).all():
            test = policies.tests.get(r.test_code)
            if test is not None and unit_matches(r.units, test.unit):
                latest[(specimens[r.specimen_id].order_id, r.test_code)] = r  # later ids win
    new_ids: list[int] = []
    for target in targets:
        formula = FORMULAS[target.test_code]
        inputs = [latest.get((target.order_id, code)) for code in formula.inputs]
        if any(i is None for i in inputs):
            continue
        person = people.get(target.order_id)
        first = inputs[0]
        specimen = specimens.get(first.specimen_id)  # type: ignore[attr-defined]
        collected = (specimen.collected_at if specimen else None) or first.observed_at or first.received_at  # type: ignore[attr-defined]
        values = {code: i.value_numeric for code, i in zip(formula.inputs, inputs, strict=True)}  # type: ignore[attr-defined]
        if formula.test_code == "EGFR":
            age = _age_years(person.birth_date, collected) if person else None
            number = egfr_ckd_epi_2021(values["CREA"], age, person.sex) if person and age is not None else None
        else:
            number = ldl_friedewald(values["CHOL"], values["HDL"], values["TG"])
        if number is None:
            continue
        test = policies.tests[formula.test_code]
        observed = max((i.observed_at or i.received_at) for i in inputs)  # type: ignore[attr-defined]
        result_id = conn.execute(insert(_R).values(
            raw_message_id=None, sequence=0, revision=0, version=1, instrument=CALCULATED_INSTRUMENT,
            accession=specimen.barcode if specimen else "", specimen_id=first.specimen_id,  # type: ignore[attr-defined]
            order_test_id=target.id, patient_id=person.patient_id if person else None, test_code=test.code,
            instrument_test_code=formula.name, loinc=test.loinc, value=f"{number:.{test.decimals}f}",
            value_numeric=round(number, test.decimals), units=test.unit, result_status="F",
            status=ResultStatus.RECEIVED, observed_at=observed, received_at=now, comment="",
        ).returning(_R.c.id)).scalar_one()
        conn.execute(insert(CalculatedInput.__table__), [  # type: ignore[attr-defined]
            {"result_id": result_id, "input_result_id": i.id, "role": code}  # type: ignore[attr-defined]
            for code, i in zip(formula.inputs, inputs, strict=True)
        ])
        session.get(OrderTest, target.id).status = "resulted"  # type: ignore[union-attr]
        new_ids.append(result_id)
    if new_ids:
        session.flush()
    return new_ids
