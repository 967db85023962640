"""Outbox → HL7 v2.5.1 ORU^R01 over MLLP, against a python-hl7 MLLP server as the EMR (issue 7.1, 7.2, 7.7)."""

from __future__ import annotations

import asyncio

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from interfaces.outbox import Destination
from interfaces.wiring import build_preparer, build_worker
from lis.config import EmrConfig
from lis.context import LisContext
from lis.models import OutboxStatus
from tests.conftest import free_port
from tests.interfaces.helpers import (
    FakeEmr,
    correct_result,
    ensure_validator,
    fast_settings,
    outbox_rows,
    release_order,
    wait_for,
)

EMR = Destination("his", "hl7-mllp")


def _config(ctx: LisContext, port: int, **kw: object):  # type: ignore[no-untyped-def]
    emr = EmrConfig(name="his", kind="hl7-mllp", host="127.0.0.1", port=port, timeout_seconds=kw.pop("timeout", 0.5),
                    max_attempts=kw.pop("max_attempts", 20), receiving_application="HIS", receiving_facility="BV")
    return ctx.config.model_copy(update={"emr": [emr]})


def test_oru_r01_content_is_valid_hl7_251(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    rel = release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="S0001")
    config = _config(ctx, 2575)
    preparer = build_preparer(ctx.db, config)
    assert preparer.prepare(rel.outbox_ids[0]) == OutboxStatus.PENDING
    row = outbox_rows(ctx.db)[0]
    text = row.payload.decode()
    msg = parse_message(text.replace("\n", "\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    msg.validate()
    segs = {s.split("|")[0]: s.split("|") for s in text.split("\r") if s}
    assert segs["MSH"][8] == "ORU^R01^ORU_R01" and segs["MSH"][9] == row.message_id
    assert segs["MSH"][11] == "2.5.1" and segs["MSH"][4] == "HIS" and segs["MSH"][5] == "BV"
    assert "079085001234^^^BCA^NI" in segs["PID"][3] and "DN4797912345678^^^BHXH^HC" in segs["PID"][3]
    assert segs["PID"][5] == "Nông^Thị Hoa" and segs["PID"][7] == "19850302"
    assert segs["PV1"][19] == "MALK-0001"
    assert segs["ORC"][2] == "P-S0001^HIS" and segs["ORC"][3].endswith("^OPENLIS")
    obx = [s.split("|") for s in text.split("\r") if s.startswith("OBX")]
    glu = next(o for o in obx if "GLU" in o[3])
    assert glu[2] == "NM" and glu[3].startswith("15074-8^") and "^LN^GLU^" in glu[3] and glu[3].endswith("^L")
    assert glu[5] == "7.8" and glu[6] == "mmol/L^mmol/L^UCUM" and glu[7] == "3.9-6.4" and glu[8] == "H"
    assert glu[11] == "F" and glu[14].startswith("20261126090000") and glu[16] == "doctor^Trần^Văn Hùng^^^BS."
    assert segs["SPM"][2] == "^S0001"


def test_correction_is_a_new_version_with_status_c(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    rel = release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="S0002")
    [corr] = correct_result(ctx.db, [EMR], rel.result_ids[0], "9.9")
    preparer = build_preparer(ctx.db, _config(ctx, 2575))
    preparer.prepare(corr)
    row = next(r for r in outbox_rows(ctx.db) if r.id == corr)
    assert row.report_version == 2 and row.correction
    obx = [s.split("|") for s in row.payload.decode().split("\r") if s.startswith("OBX")]
    assert {o[11] for o in obx} == {"C", "F"}  # the corrected analyte C, the unchanged one F
    assert next(o for o in obx if o[11] == "C")[5] == "9.9"
    obr = next(s.split("|") for s in row.payload.decode().split("\r") if s.startswith("OBR"))
    assert obr[25] == "C"


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_aa_delivers_once_in_order(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    cat = ctx.catalog.get()
    for i in range(3):
        release_order(ctx.db, cat, [EMR], specimen=f"A{i}")
    release_order(ctx.db, cat, [EMR], specimen="B0", national_id="001090000111", name="Lê Văn Bình")

    async def main() -> None:
        emr = FakeEmr("AA")
        port = await emr.start()
        worker = build_worker(ctx.db, _config(ctx, port), settings=fast_settings())
        await worker.start()
        try:
            assert await wait_for(lambda: all(r.status == "delivered" for r in outbox_rows(ctx.db, "his")))
        finally:
            await worker.stop()
            await emr.stop()
        rows = outbox_rows(ctx.db, "his")
        assert sorted(emr.received) == sorted(r.message_id for r in rows)
        assert max(emr.counts.values()) == 1
        same_patient = [r.message_id for r in rows if r.patient_id == rows[0].patient_id]
        assert [m for m in emr.received if m in same_patient] == same_patient  # release order per patient
        assert all(r.ack_code == "AA" and r.attempts == 1 and r.delivered_at for r in rows)

    _run(main())


def test_ae_is_dead_lettered_with_the_reason_and_not_retried(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="E1")

    async def main() -> None:
        emr = FakeEmr("AE")
        port = await emr.start()
        worker = build_worker(ctx.db, _config(ctx, port), settings=fast_settings())
        await worker.start()
        try:
            assert await wait_for(lambda: outbox_rows(ctx.db, "his")[0].status == OutboxStatus.DEAD)
            await asyncio.sleep(0.5)
        finally:
            await worker.stop()
            await emr.stop()
        row = outbox_rows(ctx.db, "his")[0]
        assert row.ack_code == "AE" and "Unknown patient visit code" in row.last_error and row.attempts == 1
        assert len(emr.received) == 1

    _run(main())


def test_no_answer_times_out_and_is_retried_with_the_same_control_id(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="T1")

    async def main() -> None:
        emr = FakeEmr("silent")
        port = await emr.start()
        worker = build_worker(ctx.db, _config(ctx, port, timeout=0.3), settings=fast_settings())
        await worker.start()
        try:
            assert await wait_for(lambda: outbox_rows(ctx.db, "his")[0].attempts >= 2)
            row = outbox_rows(ctx.db, "his")[0]
            assert row.status == "pending" and "no ACK" in row.last_error
            emr.mode = "AA"
            assert await wait_for(lambda: outbox_rows(ctx.db, "his")[0].status == "delivered")
        finally:
            await worker.stop()
            await emr.stop()
        assert set(emr.received) == {outbox_rows(ctx.db, "his")[0].message_id}  # same MSH-10 every time

    _run(main())


def test_emr_down_then_back_delivers_in_order_once(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    cat = ctx.catalog.get()
    for i in range(4):
        release_order(ctx.db, cat, [EMR], specimen=f"D{i}")
    port = free_port()

    async def main() -> None:
        worker = build_worker(ctx.db, _config(ctx, port), settings=fast_settings())
        await worker.start()
        emr = FakeEmr("AA")
        try:
            assert await wait_for(lambda: "cannot connect" in outbox_rows(ctx.db, "his")[0].last_error)
            await asyncio.sleep(0.5)
            rows = outbox_rows(ctx.db, "his")
            assert all(r.status == "pending" for r in rows)
            assert all(r.attempts == 0 for r in rows[1:])  # the outage pauses the destination
            await emr.start(port)
            assert await wait_for(lambda: all(r.status == "delivered" for r in outbox_rows(ctx.db, "his")))
        finally:
            await worker.stop()
            await emr.stop()
        assert emr.received == [r.message_id for r in outbox_rows(ctx.db, "his")]

    _run(main())


def test_malformed_ack_is_retried_then_dead_after_max_attempts(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="M1")

    async def main() -> None:
        emr = FakeEmr("malformed")
        port = await emr.start()
        worker = build_worker(ctx.db, _config(ctx, port, max_attempts=3), settings=fast_settings())
        await worker.start()
        try:
            assert await wait_for(lambda: outbox_rows(ctx.db, "his")[0].status == "dead")
        finally:
            await worker.stop()
            await emr.stop()
        row = outbox_rows(ctx.db, "his")[0]
        assert row.attempts == 3 and "gave up after 3 attempts: malformed ACK" in row.last_error
        assert len(emr.received) == 3

    _run(main())


def test_two_workers_on_postgresql_never_send_the_same_destination_twice(ctx: LisContext) -> None:
    import pytest

    if ctx.db.dialect != "postgresql":
        pytest.skip("one process per destination is enforced with a PostgreSQL advisory lock")
    ensure_validator(ctx.db)
    cat = ctx.catalog.get()
    for i in range(6):
        release_order(ctx.db, cat, [EMR], specimen=f"PG{i}", national_id=f"0010900001{i:02d}")

    async def main() -> None:
        emr = FakeEmr("AA")
        port = await emr.start()
        first = build_worker(ctx.db, _config(ctx, port), settings=fast_settings())
        second = build_worker(ctx.db, _config(ctx, port), settings=fast_settings())
        await first.start()
        await second.start()
        try:
            assert await wait_for(lambda: all(r.status == "delivered" for r in outbox_rows(ctx.db, "his")))
            await asyncio.sleep(0.3)
        finally:
            await first.stop()
            await second.stop()
            await emr.stop()
        assert sorted(emr.received) == sorted(r.message_id for r in outbox_rows(ctx.db, "his"))

    _run(main())


def test_payloads_built_in_a_worker_process(ctx: LisContext) -> None:
    import pytest

    if ctx.db.dialect != "sqlite":
        pytest.skip("the process pool is independent of the database; once is enough")
    ensure_validator(ctx.db)
    release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="POOL1")

    async def main() -> None:
        emr = FakeEmr("AA")
        port = await emr.start()
        worker = build_worker(ctx.db, _config(ctx, port), settings=fast_settings(prepare_processes=1))
        await worker.start()
        try:
            assert await wait_for(lambda: outbox_rows(ctx.db, "his")[0].status == "delivered", 30)
        finally:
            await worker.stop()
            await emr.stop()
        assert emr.received == [outbox_rows(ctx.db, "his")[0].message_id]

    _run(main())


def test_signed_pdf_can_ride_along_as_obx_ed(ctx: LisContext) -> None:
    import base64

    from interfaces.signing import create_demo_pki

    ensure_validator(ctx.db)
    create_demo_pki(ctx.config.data_dir, {"doctor": "BS. Trần Văn Hùng"})
    rel = release_order(ctx.db, ctx.catalog.get(), [EMR], specimen="ED1")
    build_preparer(ctx.db, _config(ctx, 2575), embed_pdf=frozenset({"his"})).prepare(rel.outbox_ids[0])
    row = outbox_rows(ctx.db)[0]
    assert row.payload is not None, row.last_error
    text = row.payload.decode()
    ed = [s.split("|") for s in text.split("\r") if s.startswith("OBX|") and s.split("|")[2] == "ED"]
    assert len(ed) == 1 and ed[0][5].startswith("^application^pdf^Base64^")
    data = ed[0][5].split("^")[4]
    assert base64.b64decode(data).startswith(b"%PDF")
    # hl7apy caps ED data at 199 characters (HL7 v2.5.1 has no limit): validate the structure without it
    parse_message(text.replace(data, "JVBERi0="), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
