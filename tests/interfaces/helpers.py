"""Shared test helpers for interfaces: released reports in the database, and a python-hl7 MLLP EMR peer."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import hl7
from hl7.mllp import start_hl7_server
from sqlmodel import select

from interfaces.outbox import Destination, enqueue
from lis.db import Database
from lis.models import Encounter, OrderTest, Result, ResultStatus, Specimen, User
from lis.services.catalog import CatalogSnapshot
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData

VALUES = {"GLU": ("7.8", "mmol/L", "3.9-6.4", "H"), "CREA": ("88", "umol/L", "62-106", ""),
          "NA": ("139", "mmol/L", "135-145", ""), "K": ("3.1", "mmol/L", "3.5-5.1", "L")}


def ensure_validator(db: Database, username: str = "doctor", full_name: str = "BS. Trần Văn Hùng") -> None:
    with db.write() as session:
        if session.exec(select(User).where(User.username == username)).first() is None:
            session.add(User(username=username, full_name=full_name, role="validator", password_hash="x"))


@dataclass
class Released:
    order_id: int
    result_ids: list[int]
    patient_id: int
    outbox_ids: list[int] = field(default_factory=list)


def release_order(
    db: Database, catalog: CatalogSnapshot, dests: list[Destination], *, specimen: str,
    national_id: str = "079085001234", name: str = "Nông Thị Hoa", tests: tuple[str, ...] = ("GLU", "CREA"),
    visit_code: str | None = "MALK-0001", validator: str = "doctor", values: dict[str, str] | None = None,
) -> Released:
    """Create an order with results already released and call the release hook in the same transaction."""
    with db.write() as session:
        order = create_order(session, catalog, OrderRequest(
            patient=PatientData(name=name, national_id=national_id, sex="F", birth_date=date(1985, 3, 2),
                                insurance_number="DN4797912345678"),
            specimen_id=specimen, tests=list(tests), placer_number=f"P-{specimen}", ordering_clinician="BS. Lê An",
            department="Nội tổng hợp", collected_at=datetime(2026, 11, 26, 1, 30, tzinfo=UTC)), "test")
        if visit_code:
            enc = session.exec(select(Encounter).where(Encounter.visit_code == visit_code)).first()
            if enc is None:
                enc = Encounter(patient_id=order.patient_id, visit_code=visit_code)
                session.add(enc)
                session.flush()
            order.encounter_id = enc.id
            session.add(order)
        spec = session.exec(select(Specimen).where(Specimen.barcode == specimen)).one()
        results = []
        for ot in session.exec(select(OrderTest).where(OrderTest.order_id == order.id)).all():
            value, unit, rng, flag = VALUES.get(ot.test_code, ("1.0", "", "", ""))
            if values and ot.test_code in values:
                value = values[ot.test_code]
            test = catalog.by_code[ot.test_code]
            r = Result(accession=specimen, specimen_id=spec.id, order_test_id=ot.id, patient_id=order.patient_id,
                       test_code=ot.test_code, loinc=test.loinc, value=value, value_numeric=float(value),
                       units=unit, reference_range=rng, abnormal_flags=flag, result_status="F",
                       status=ResultStatus.RELEASED, observed_at=datetime(2026, 11, 26, 2, 0, tzinfo=UTC),
                       updated_by=validator, updated_at=datetime(2026, 11, 26, 3, 0, tzinfo=UTC),
                       released_by=validator, released_at=datetime(2026, 11, 26, 3, 0, tzinfo=UTC))
            session.add(r)
            results.append(r)
        session.flush()
        rows = enqueue(session, results, False, dests)
        return Released(order.id or 0, [r.id or 0 for r in results], order.patient_id, [r.id or 0 for r in rows])


def correct_result(db: Database, dests: list[Destination], result_id: int, new_value: str,
                   validator: str = "doctor") -> list[int]:
    """An amendment: a new revision superseding ``result_id``, released as a correction."""
    with db.write() as session:
        old = session.get(Result, result_id)
        assert old is not None
        old.status = ResultStatus.AMENDED
        session.add(old)
        skip = ("id", "status", "value", "value_numeric", "revision", "supersedes_id", "released_by", "version")
        new = Result(**{k: v for k, v in old.model_dump().items() if k not in skip},
                     revision=old.revision + 1, status=ResultStatus.RELEASED, value=new_value,
                     value_numeric=float(new_value), supersedes_id=old.id, released_by=validator)
        session.add(new)
        session.flush()
        return [r.id or 0 for r in enqueue(session, [new], True, dests)]


class FakeEmr:
    """An EMR built on python-hl7's asyncio MLLP server; ``mode`` decides the answer to each ORU."""

    def __init__(self, mode: str = "AA", *, delay: float = 0.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.mode = mode  # AA | AE | AR | silent | malformed | close
        self.delay = delay
        self.ssl_context = ssl_context
        self.received: list[str] = []  # MSH-10 of every message received (with resends)
        self.messages: dict[str, str] = {}
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.received)

    async def start(self, port: int = 0) -> int:
        self.server = await start_hl7_server(self._client, "127.0.0.1", port, ssl=self.ssl_context,
                                             encoding="utf-8")
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None

    async def _client(self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                control_id = str(message.segment("MSH")(10))
                self.received.append(control_id)
                self.messages[control_id] = str(message)
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.mode == "silent":
                    continue
                if self.mode == "close":
                    break
                if self.mode == "malformed":
                    writer.writeblock(b"THIS IS NOT HL7")
                else:
                    ack = str(message.create_ack(self.mode, application="HIS", facility="BV"))
                    segments = [seg for seg in ack.split("\r") if seg]
                    if self.mode != "AA":
                        segments = [seg + "|Unknown patient visit code" if seg.startswith("MSA") else seg
                                    for seg in segments]
                        segments.append("ERR|||207^Application internal error^HL70357|E||||"
                                        "Unknown patient visit code")
                    writer.writeblock(("\r".join(segments) + "\r").encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, hl7.mllp.InvalidBlockError):
            pass
        finally:
            writer.close()





def fast_settings(**overrides: float) -> object:
    from interfaces.worker import OutboxSettings

    base = dict(backoff_base=0.05, backoff_cap=0.4, idle_poll=0.2, lanes=4, batch=200, prepare_processes=0)
    base.update(overrides)
    return OutboxSettings(**base)  # type: ignore[arg-type]


def outbox_rows(db: Database, destination: str | None = None) -> list:
    from lis.models import OutboxMessage

    with db.read() as session:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if destination:
            stmt = stmt.where(OutboxMessage.destination == destination)
        return list(session.exec(stmt).all())


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await asyncio.to_thread(predicate):
            return True
        await asyncio.sleep(interval)
    return bool(await asyncio.to_thread(predicate))
