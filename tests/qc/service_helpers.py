"""Helpers for the QC service tests: a configured glucose QC (two levels) and ASTM QC/patient messages."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from lis.context import LisContext
from lis.models import QcRun
from qc import setup
from qc.service import QcService
from tests.lis.astm_fixtures import astm_message

# 08:00 at the lab (Asia/Ho_Chi_Minh) ten days ago: fixed within a test run, always in the past
T0 = (datetime.now(UTC) - timedelta(days=10)).replace(hour=1, minute=0, second=0, microsecond=0)
_LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
_patients = itertools.count(1)

LEVELS = {"QC-1": ("5.0", "0.2"), "QC-2": ("15.0", "0.5")}  # material code -> (mean, SD) of GLU on xn-1


def stamp(at: datetime) -> str:
    """ASTM timestamp (analyser local time) for an aware UTC datetime."""
    return at.astimezone(_LOCAL).strftime("%Y%m%d%H%M%S")


def value_at(material: str, z: float | str) -> str:
    mean, sd = LEVELS[material]
    return str(Decimal(mean) + Decimal(sd) * Decimal(str(z)))


@dataclass
class GlucoseQc:
    """Materials QC-1/QC-2, lot L1 each, manufacturer targets for GLU on xn-1."""

    ctx: LisContext
    service: QcService
    materials: dict[str, int]
    lots: dict[str, int]
    targets: dict[str, int]

    def send(self, material: str, value: str, at: datetime, test: str = "GLU") -> list[int]:
        """One QC sample (one level) from the analyser; returns the QC result ids."""
        outcome = self.ctx.ingest.ingest("xn-1", astm_message(material, [(test, value, "mmol/L")], qc=True,
                                                               stamp=stamp(at)))
        return outcome.result_ids

    def run(self, at: datetime, z1: float | str, z2: float | str | None = None) -> QcRun:
        """A complete two-level run (level 2 two minutes after level 1); returns the evaluated run."""
        ids = self.send("QC-1", value_at("QC-1", z1), at)
        if z2 is not None:
            ids += self.send("QC-2", value_at("QC-2", z2), at + timedelta(minutes=2))
        return self.run_of(ids[-1])

    def run_of(self, result_id: int) -> QcRun:
        from lis.models import QcRunObservation

        with self.ctx.db.read() as session:
            return session.exec(select(QcRun).join(QcRunObservation, col(QcRunObservation.run_id) == QcRun.id)
                                .where(QcRunObservation.result_id == result_id)).one()

    def patient(self, at: datetime, test: str = "GLU", value: str = "5.5") -> int:
        """A patient result measured at ``at``; returns its result id."""
        specimen = f"P{next(_patients):06d}"
        outcome = self.ctx.ingest.ingest("xn-1", astm_message(specimen, [(test, value, "mmol/L")], stamp=stamp(at)))
        return outcome.result_ids[0]


def configure_glucose(ctx: LisContext, service: QcService, *, levels: tuple[str, ...] = ("QC-1", "QC-2"),
                      rules: tuple[list[str], list[str]] | None = None) -> GlucoseQc:
    materials: dict[str, int] = {}
    lots: dict[str, int] = {}
    targets: dict[str, int] = {}
    with ctx.db.write() as session:
        for i, code in enumerate(levels, start=1):
            material = setup.create_material(session, "boss", code=code, name=f"Chemistry control {i}",
                                             level=str(i), manufacturer="Bio-Rad")
            assert material.id is not None
            lot = setup.create_lot(session, "boss", material_id=material.id, lot_number="L1")
            assert lot.id is not None
            mean, sd = LEVELS[code]
            target = setup.create_target(session, "boss", lot_id=lot.id, instrument="xn-1", test_code="GLU",
                                         mean=mean, sd=sd, unit="mmol/L", tea_pct=10.0, bias_pct=1.0)
            materials[code], lots[code], targets[code] = material.id, lot.id, target.id or 0
        if rules is not None:
            setup.set_rule_set(session, "boss", instrument="xn-1", test_code="GLU", rejection_rules=rules[0],
                               warning_rules=rules[1])
    return GlucoseQc(ctx, service, materials, lots, targets)
