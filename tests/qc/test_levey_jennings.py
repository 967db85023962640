"""Levey-Jennings data from stored runs (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lis.context import LisContext
from qc.errors import QcNotFound
from qc.levey_jennings import levey_jennings
from qc.stats import summarize
from qc.wiring import install
from tests.qc.service_helpers import T0, configure_glucose, value_at


def test_points_lines_violations_and_statistics(ctx: LisContext) -> None:
    glu = configure_glucose(ctx, install(ctx))
    zs = [0.5, -1.0, 2.5, 2.5, 0.0]  # runs 3 (1_2s warning) and 4 (2_2s across runs: reject)
    for i, z in enumerate(zs):
        glu.run(T0 + timedelta(hours=i), z, 0)
    glu.send("QC-1", "----", T0 + timedelta(hours=6))
    with ctx.db.read() as session:
        data = levey_jennings(session, instrument="xn-1", test_code="GLU", lot_id=glu.lots["QC-1"]).as_dict()
    assert data["lot_number"] == "L1" and data["material"]["code"] == "QC-1"  # type: ignore[index]
    assert data["lines"] == pytest.approx({"mean": 5.0, "+1sd": 5.2, "-1sd": 4.8, "+2sd": 5.4, "-2sd": 4.6,
                                           "+3sd": 5.6, "-3sd": 4.4})
    points = data["points"]
    assert isinstance(points, list) and len(points) == 6
    assert [p["z"] for p in points[:5]] == pytest.approx(zs)
    assert [p["decision"] for p in points[:5]] == ["accept", "accept", "warning", "reject", "accept"]
    assert points[2]["rules"] == ["1_2s", "2_2s"] and points[3]["rules"] == ["1_2s", "2_2s"]
    assert points[0]["rules"] == [] and points[5]["value"] is None and points[5]["status"] == "flagged"
    stats = data["statistics"]
    expected = summarize([value_at("QC-1", z) for z in zs])
    assert stats["n"] == 5 and stats["mean"] == pytest.approx(float(expected.mean))  # type: ignore[index]
    assert stats["sd"] == pytest.approx(float(expected.sd or 0))  # type: ignore[index]
    assert len(stats["cumulative"]) == 5  # type: ignore[index, arg-type]
    assert stats["versus_target"]["mean_z"] == pytest.approx(0.9)  # type: ignore[index]
    with ctx.db.read() as session, pytest.raises(QcNotFound):
        levey_jennings(session, instrument="xn-1", test_code="GLU", lot_id=9999)
