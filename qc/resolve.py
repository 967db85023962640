"""Which control material, lot and target a QC observation was measured with (issue 5, "Bad input").

* material: the ``qc_material`` whose ``code`` is the result's ``control_material`` (profiles with a
  ``qc.material_field``), else its ``accession`` (the QC specimen id: the generic ASTM profile reads no
  material field, so the specimen id in O-3, e.g. ``QC-1``, names the material);
* lot: the result's ``control_lot`` when the analyser sent one, else the newest lot of the material in use
  and not expired on the observation day;
* target: that lot's target for the analyte on the instrument.

Whatever prevents a Westgard evaluation is returned as a flag (unknown material or lot, no lot in use,
expired lot, no target, target without mean/SD or with SD ≤ 0, non-numeric value such as ``<0.1`` or
``----``); the service stores the observation with its flags and decides the run ``cannot_evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlmodel import Session, col, select

from lis.models import ControlLot, ControlMaterial, QcTarget, Result
from qc.exact import to_decimal
from qc.model import QcInputError


@dataclass(slots=True)
class Resolved:
    """Material, lot and target of one observation, its engine material key, exact value and flags."""

    material: ControlMaterial | None
    lot: ControlLot | None
    target: QcTarget | None
    key: str
    value: Decimal | None
    flags: list[str]


def qc_value(text: str) -> Decimal | None:
    """The exact decimal of a QC value ("5.5", "5,5"); None for censored or non-numeric ("<0.1", "----")."""
    text = text.strip()
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        return to_decimal(text, what="QC value")
    except QcInputError:
        return None


def resolve_observation(session: Session, result: Result, at: datetime, day: date | None = None) -> Resolved:
    """Material, lot, target and value of a QC result observed at ``at`` (``day``: the lab's local date of
    ``at``, for lot expiry; default the UTC date), with what is wrong with them."""
    flags: list[str] = []
    names = [n for n in (result.control_material.strip(), result.accession.strip()) if n]
    material = None
    for name in names:
        material = session.exec(select(ControlMaterial).where(ControlMaterial.code == name)).first()
        if material is not None:
            break
    lot: ControlLot | None = None
    target: QcTarget | None = None
    if material is None:
        flags.append(f"unknown control material {names[0] if names else ''!r}")
        key = f"?{names[0] if names else result.id}"
    else:
        key = f"m{material.id}"
        lot = _lot(session, material, result.control_lot.strip(), day or at.date(), flags)
    if lot is not None:
        target = session.exec(select(QcTarget).where(
            QcTarget.lot_id == lot.id, QcTarget.instrument == result.instrument,
            QcTarget.test_code == result.test_code)).first()
        if target is None:
            flags.append(f"no target for {result.test_code} on {result.instrument}, lot {lot.lot_number}")
        elif target.state == "active" and (target.mean is None or target.sd is None):
            flags.append(f"target {target.id} has no mean/SD")
        elif target.state == "active" and Decimal(target.sd or 0) <= 0:
            flags.append(f"target SD must be > 0, got {target.sd}")
    value = qc_value(result.value)
    if value is None:
        flags.append(f"non-numeric QC value {result.value.strip()!r}")
    return Resolved(material, lot, target, key, value, flags)


def _lot(session: Session, material: ControlMaterial, lot_number: str, day: date,
         flags: list[str]) -> ControlLot | None:
    if lot_number:
        lot = session.exec(select(ControlLot).where(ControlLot.material_id == material.id,
                                                    ControlLot.lot_number == lot_number)).first()
        if lot is None:
            flags.append(f"unknown lot {lot_number!r} of control material {material.code!r}")
            return None
    else:
        lots = session.exec(select(ControlLot).where(ControlLot.material_id == material.id,
                                                     col(ControlLot.in_use).is_(True))
                            .order_by(col(ControlLot.created_at).desc(), col(ControlLot.id).desc())).all()
        lot = next((x for x in lots if x.expires_on is None or x.expires_on >= day), lots[0] if lots else None)
        if lot is None:
            flags.append(f"no lot of control material {material.code!r} is in use")
            return None
    if lot.expires_on is not None and lot.expires_on < day:
        flags.append(f"lot {lot.lot_number} expired on {lot.expires_on.isoformat()}")
    return lot
