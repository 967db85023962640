"""Pending orders for host queries: lis side (``lis.services.host_query``) and the drivers' code translation."""

from __future__ import annotations

from drivers.host_orders import instrument_codes
from drivers.profile import get_profile
from lis.context import LisContext
from lis.models import OrderTest, TestCodeMap
from lis.services.host_query import pending_orders, pending_specimen_ids, unknown_specimens
from tests.drivers.transports.helpers import make_orders


def test_pending_orders_patient_priority_tests_and_unknown(ctx: LisContext) -> None:
    make_orders(ctx, {"P1": ["GLU", "NA"], "P2": ["WBC"]}, priority="stat")
    with ctx.db.write() as session:
        session.add(TestCodeMap(instrument="xn-1", instrument_code="1001", test_code="GLU"))
        done = session.exec(OrderTest.__table__.select().where(OrderTest.test_code == "NA")).first()
        assert done is not None
        session.get(OrderTest, done.id).status = "resulted"  # type: ignore[union-attr]
    with ctx.db.read() as session:
        answer = pending_orders(session, "xn-1", ["P1", "NOPE", "P1", " "])
        assert answer.unknown == ["NOPE"]
        (p1,) = answer.found
        assert p1.specimen_id == "P1" and p1.priority == "S" and p1.sex == "F" and p1.patient_id == "MRNP1"
        assert [(t.test_code, t.instrument_code) for t in p1.tests] == [("GLU", "1001")]  # NA already resulted
        assert pending_specimen_ids(session) == ["P1", "P2"]
        assert unknown_specimens(session, ["P2", "X9"]) == ["X9"]


def test_instrument_codes_lab_map_then_profile_then_generic_identity(ctx: LisContext) -> None:
    make_orders(ctx, {"C1": ["RDW", "GLU", "WBC"]})
    with ctx.db.write() as session:
        session.add(TestCodeMap(instrument="xn-1", instrument_code="W-LAB", test_code="WBC"))
    with ctx.db.read() as session:
        (spec,) = pending_orders(session, "xn-1", ["C1"]).found
    # sysmex-xn: RDW is the instrument code RDW-CV; GLU is not on a haematology analyser: left out
    assert instrument_codes(spec, get_profile("sysmex-xn")) == ("RDW-CV", "W-LAB")
    # generic-astm has no code map: instrument code = LIS code (the lab's mapping still wins)
    assert instrument_codes(spec, get_profile("generic-astm")) == ("RDW", "GLU", "W-LAB")
