"""Orders in from the EMR: python-hl7 sends OML^O21 / ORM^O01 / ADT over MLLP to the LIS listener (issue 7.4)."""

from __future__ import annotations

import asyncio

import hl7
from hl7.mllp import open_hl7_connection
from sqlmodel import select

from interfaces.order_listener import MllpOrderListener
from interfaces.orders_in import InboundHandler
from lis.context import LisContext
from lis.models import EmrInbound, Encounter, Order, OrderTest, Patient, Specimen, TestDefinition

MSH = "MSH|^~\\&|HIS|BV|OPENLIS|LAB|20261126080000+0700||{type}|{cid}|P|{ver}|||AL|NE||UNICODE UTF-8"
PID = ("PID|1||079085001234^^^BCA^NI~DN4797912345678^^^BHXH^HC~BN001^^^BV^MR||Nông^Thị Hoa||{dob}|F|||"
       "12 Lê Lợi^^Huế")
PV1 = "PV1|1|O|KHAM-NOI||||||||||||||||MALK-2026-0001"


def oml(cid: str, specimen: str = "2611260101", tests: tuple[str, ...] = ("GLU^Glucose^L", "14682-9^Creatinine^LN"),
        dob: str = "19850302") -> str:
    obrs = [f"OBR|{i}|HIS-{specimen}||{t}|||20261126073000+0700" for i, t in enumerate(tests, 1)]
    return "\r".join([MSH.format(type="OML^O21^OML_O21", cid=cid, ver="2.5.1"), PID.format(dob=dob), PV1,
                      f"ORC|NW|HIS-{specimen}||||||||||^Lê^An^^^BS.", *obrs, f"SPM|1|^{specimen}||serum"])


def orm(cid: str) -> str:
    return "\r".join([MSH.format(type="ORM^O01", cid=cid, ver="2.3.1"), PID.format(dob="19850302"), PV1,
                      "ORC|NW|HIS-ORD-2|2611260102", "OBR|1|HIS-ORD-2|2611260102|CBC^Complete blood count^L|S"])


def adt(cid: str, trigger: str, dob: str, name: str = "Nông^Thị Hoa") -> str:
    return "\r".join([MSH.format(type=f"ADT^{trigger}^ADT_A01", cid=cid, ver="2.5.1"),
                      PID.format(dob=dob).replace("Nông^Thị Hoa", name), PV1])


async def _exchange(port: int, messages: list[str]) -> list[hl7.Message]:
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    acks = []
    try:
        for text in messages:
            writer.writemessage(hl7.parse(text))
            await writer.drain()
            acks.append(await asyncio.wait_for(reader.readmessage(), 10))
    finally:
        writer.close()
    return acks


def _send(ctx: LisContext, messages: list[str]) -> list[hl7.Message]:
    handler = InboundHandler(ctx.db, ctx.catalog.get, ctx.bus, "his", "Asia/Ho_Chi_Minh")

    async def main() -> list[hl7.Message]:
        listener = MllpOrderListener(handler, "127.0.0.1", 0)
        await listener.start()
        try:
            return await _exchange(listener.port, messages)
        finally:
            await listener.stop()

    return asyncio.run(main())


def _msa(ack: hl7.Message) -> tuple[str, str, str]:
    msa = ack.segment("MSA")
    return str(msa(1)), str(msa(2)), str(msa(3)) if len(msa) > 3 else ""


def test_oml_o21_creates_the_order_with_its_specimen_and_acks_aa(ctx: LisContext) -> None:
    received = []
    ctx.bus.subscribe(__import__("lis.events", fromlist=["OrderReceived"]).OrderReceived, received.append)
    [ack] = _send(ctx, [oml("OML0001")])
    assert _msa(ack)[:2] == ("AA", "OML0001")
    assert str(ack.segment("MSH")(9)) == "ACK^O21^ACK"
    with ctx.db.read() as session:
        spec = session.exec(select(Specimen).where(Specimen.barcode == "2611260101")).one()
        order = session.get(Order, spec.order_id)
        tests = sorted(t.test_code for t in session.exec(select(OrderTest).where(OrderTest.order_id == order.id)))
        patient = session.get(Patient, order.patient_id)
        encounter = session.get(Encounter, order.encounter_id)
        inbound = session.exec(select(EmrInbound)).one()
    assert order.placer_number == "HIS-2611260101" and order.source == "hl7"
    assert order.ordering_clinician == "BS. Lê An"
    assert tests == ["CREA", "GLU"]  # LOINC 14682-9 resolved to the local code
    assert patient.national_id == "079085001234" and patient.insurance_number == "DN4797912345678"
    assert patient.mrn == "BN001" and patient.name == "Nông Thị Hoa" and patient.address == "12 Lê Lợi, Huế"
    assert encounter.visit_code == "MALK-2026-0001"
    assert inbound.status == "accepted" and inbound.order_id == order.id
    assert [e.specimen_barcodes for e in received] == [("2611260101",)]


def test_orm_o01_and_a_retransmission_create_one_order(ctx: LisContext) -> None:
    acks = _send(ctx, [orm("ORM0001"), orm("ORM0001"), orm("ORM0002")])
    assert [_msa(a)[0] for a in acks] == ["AA", "AA", "AA"]
    with ctx.db.read() as session:
        orders = session.exec(select(Order).where(Order.placer_number == "HIS-ORD-2")).all()
        spec = session.exec(select(Specimen).where(Specimen.barcode == "2611260102")).one()
    assert len(orders) == 1 and orders[0].priority == "stat" and spec.order_id == orders[0].id


def test_unknown_test_code_is_ae_naming_the_code_and_kept_for_attention(ctx: LisContext) -> None:
    [ack] = _send(ctx, [oml("OML0009", specimen="2611260109", tests=("GLU^Glucose^L", "XYZ123^Mystery test^L"))])
    code, cid, text = _msa(ack)
    assert code == "AE" and cid == "OML0009" and "XYZ123" in text
    assert "XYZ123" in str(ack.segment("ERR")(8)) and str(ack.segment("ERR")(3)).startswith("103")
    with ctx.db.read() as session:
        assert session.exec(select(Specimen).where(Specimen.barcode == "2611260109")).first() is None
        kept = session.exec(select(EmrInbound)).one()
    assert kept.status == "needs_attention" and "XYZ123" in kept.error
    # the lab adds the test to the catalogue, then reprocesses the kept message
    with ctx.db.write() as session:
        session.add(TestDefinition(code="XYZ123", name_en="Mystery", name_vi="Bí ẩn"))
    ctx.catalog.invalidate()
    handler = InboundHandler(ctx.db, ctx.catalog.get, ctx.bus, "his", "Asia/Ho_Chi_Minh")
    result = handler.reprocess(kept.id or 0)
    assert result.status == "accepted" and result.order_ids
    with ctx.db.read() as session:
        assert session.exec(select(EmrInbound)).one().status == "accepted"


def test_adt_updates_demographics_and_an_invalid_date_is_ae(ctx: LisContext) -> None:
    acks = _send(ctx, [adt("ADT1", "A04", "19850302"), adt("ADT2", "A08", "19850302", name="Nông^Thị Hoà"),
                       adt("ADT3", "A08", "19851302")])
    assert [_msa(a)[0] for a in acks] == ["AA", "AA", "AE"]
    assert "PID-7" in _msa(acks[2])[2] and "19851302" in _msa(acks[2])[2]
    with ctx.db.read() as session:
        patient = session.exec(select(Patient).where(Patient.national_id == "079085001234")).one()
        rejected = session.exec(select(EmrInbound).where(EmrInbound.control_id == "ADT3")).one()
    assert patient.name == "Nông Thị Hoà" and rejected.status == "rejected"


def test_garbage_gets_ar_and_the_connection_survives(ctx: LisContext) -> None:
    handler = InboundHandler(ctx.db, ctx.catalog.get, ctx.bus, "his", "Asia/Ho_Chi_Minh")

    async def main() -> tuple[bytes, list[hl7.Message]]:
        listener = MllpOrderListener(handler, "127.0.0.1", 0)
        await listener.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b"\x0bHELLO\x1c\r")
            await writer.drain()
            first = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
            writer.close()
            return first, await _exchange(listener.port, [oml("OML0100", specimen="2611260110")])
        finally:
            await listener.stop()

    garbage_ack, [ok] = asyncio.run(main())
    assert b"MSA|AR|" in garbage_ack and _msa(ok)[0] == "AA"
