"""Read-only QC views for the web QC dashboard: open holds, lots and targets of an analyte, materials.

The QC service itself (evaluation, holds, corrective actions) lives in ``qc/``; these are plain queries on
the tables of ``lis.models.qc`` so the page never builds SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from lis.models import ControlLot, ControlMaterial, QcHold, QcHoldState, QcTarget


def open_holds(session: Session, instrument: str | None = None, limit: int = 200) -> list[QcHold]:
    stmt = select(QcHold).where(QcHold.state != QcHoldState.LIFTED).order_by(col(QcHold.id).desc()).limit(limit)
    if instrument:
        stmt = stmt.where(QcHold.instrument == instrument)
    return list(session.exec(stmt).all())


@dataclass(frozen=True)
class LotTarget:
    target: QcTarget
    lot: ControlLot
    material: ControlMaterial

    @property
    def label(self) -> str:
        level = f" ({self.material.level})" if self.material.level else ""
        return f"{self.material.name}{level} — lot {self.lot.lot_number}"


def lot_targets(session: Session, instrument: str | None = None, test_code: str | None = None) -> list[LotTarget]:
    stmt = (select(QcTarget, ControlLot, ControlMaterial)
            .join(ControlLot, col(ControlLot.id) == QcTarget.lot_id)
            .join(ControlMaterial, col(ControlMaterial.id) == ControlLot.material_id)
            .order_by(QcTarget.instrument, QcTarget.test_code, ControlMaterial.level, col(ControlLot.id)))
    if instrument:
        stmt = stmt.where(QcTarget.instrument == instrument)
    if test_code:
        stmt = stmt.where(QcTarget.test_code == test_code)
    return [LotTarget(t, lot, m) for t, lot, m in session.exec(stmt).all()]


def materials(session: Session) -> list[ControlMaterial]:
    return list(session.exec(select(ControlMaterial).order_by(ControlMaterial.code)).all())


def lots(session: Session) -> list[tuple[ControlLot, ControlMaterial]]:
    return list(session.exec(select(ControlLot, ControlMaterial)
                             .join(ControlMaterial, col(ControlMaterial.id) == ControlLot.material_id)
                             .order_by(ControlMaterial.code, col(ControlLot.id))).all())
