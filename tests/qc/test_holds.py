"""lis.services.qc_holds: the release workflow's query, in batches (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from lis.context import LisContext
from lis.models import QcHold, Result, utcnow
from lis.services.qc_holds import held_results, is_held
from qc.wiring import install
from tests.qc.service_helpers import T0, configure_glucose


def _patients(ctx: LisContext, rows: list[tuple[str, str, object]]) -> list[int]:
    now = utcnow()
    with ctx.db.write() as session:
        session.connection().execute(insert(Result.__table__), [
            {"instrument": inst, "test_code": code, "observed_at": at, "received_at": now, "accession": f"S{i}",
             "value": "1", "is_qc": False, "sequence": i, "revision": 0, "version": 1, "status": "received"}
            for i, (inst, code, at) in enumerate(rows)])
        return [r for (r,) in session.connection().exec_driver_sql(
            "SELECT id FROM result WHERE NOT is_qc ORDER BY id").all()]


def test_batch_of_1200_results_mixed_pairs(ctx: LisContext) -> None:
    glu = configure_glucose(ctx, install(ctx))
    glu.run(T0, 0, 0)
    glu.run(T0 + timedelta(hours=2), 3.5, 0)  # rejected: GLU on xn-1 held since T0
    rows = []
    for i in range(400):
        at = T0 + timedelta(minutes=i)
        rows += [("xn-1", "GLU", at), ("xn-1", "NA", at), ("bs-1", "GLU", at - timedelta(hours=1))]
    ids = _patients(ctx, rows)
    with ctx.db.read() as session:
        held = held_results(session, ids)
        qc_ids = [r for r in ids if r not in held]
        assert held_results(session, []) == {}
    glu_ids = ids[0::3]
    assert set(held) == set(glu_ids) and set(held.values()) == {"rejected_run"}
    assert len(qc_ids) == 800  # NA and bs-1 are not under QC: never held


def test_open_hold_without_since_holds_everything(ctx: LisContext) -> None:
    configure_glucose(ctx, install(ctx))
    with ctx.db.write() as session:
        session.add(QcHold(instrument="xn-1", test_code="GLU", reason="cannot_evaluate", since=None))
    with ctx.db.read() as session:
        assert is_held(session, "xn-1", "GLU", T0 - timedelta(days=400)) == "cannot_evaluate"
        assert is_held(session, "xn-1", "NA", T0) is None
