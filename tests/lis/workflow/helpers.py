"""Helpers for the result-workflow tests: orders, ASTM messages with flags and comments, reading rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import select

from lis.context import LisContext
from lis.models import Result
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData


@dataclass
class Obs:
    code: str
    value: str
    unit: str = ""
    flags: str = "N"
    status: str = "F"
    comment: str = ""


def astm(specimen: str, observations: list[Obs], stamp: str = "20261126083000") -> bytes:
    """An unframed LIS2-A2 results message (H P O R [C] ... L)."""
    records = ["H|\\^&|||XN-550^00-22^12345^^^^BR123||||||||E1394-97", "P|1||PID1||Sample^Test||19800101|F",
               f"O|1|{specimen}||^^^ALL|R|{stamp}|||||N||||||||||||||F"]
    for i, o in enumerate(observations, start=1):
        records.append(f"R|{i}|^^^{o.code}|{o.value}|{o.unit}||{o.flags}||{o.status}||||{stamp}")
        if o.comment:
            records.append(f"C|1|I|{o.comment}|G")
    records.append("L|1|N")
    return ("\r".join(records) + "\r").encode("latin-1")


def order(ctx: LisContext, barcode: str, tests: list[str], *, sex: str = "F", birth: date | None = date(1985, 3, 2),
          national_id: str | None = None, collected_at: datetime | None = None) -> int:
    with ctx.db.write() as session:
        created = create_order(session, ctx.catalog.get(), OrderRequest(
            patient=PatientData(name="Nông Thị Hoa", national_id=national_id, sex=sex, birth_date=birth),
            specimen_id=barcode, tests=tests, collected_at=collected_at), "test")
        assert created.id is not None
        return created.id


def ingest(ctx: LisContext, barcode: str, observations: list[Obs]) -> list[int]:
    outcome = ctx.ingest.ingest("xn-1", astm(barcode, observations))
    return outcome.result_ids


def row(ctx: LisContext, result_id: int) -> Result:
    with ctx.db.read() as session:
        found = session.get(Result, result_id)
        assert found is not None
        return found


def by_test(ctx: LisContext, barcode: str) -> dict[str, Result]:
    """The newest row of each test on a specimen."""
    with ctx.db.read() as session:
        rows = session.exec(select(Result).where(Result.accession == barcode).order_by(Result.id)).all()
    return {r.test_code or r.instrument_test_code: r for r in rows}
