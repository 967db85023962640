"""Test data for the web tests: orders and analyser results through the real services."""

from __future__ import annotations

from datetime import date

from lis.context import LisContext
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData
from tests.lis.astm_fixtures import astm_message

_counter = iter(range(1, 10_000))


def order(ctx: LisContext, barcode: str, tests: list[str], *, name: str = "Nông Thị Hoa", priority: str = "routine",
          national_id: str | None = None) -> int:
    n = next(_counter)
    with ctx.db.write() as session:
        created = create_order(session, ctx.catalog.get(), OrderRequest(
            patient=PatientData(name=name, national_id=national_id or f"0011900{n:05d}", sex="F",
                                birth_date=date(1980, 5, 17)),
            specimen_id=barcode, tests=tests, priority=priority, source="manual"), "test")
        assert created.id is not None
        return created.id


def results(ctx: LisContext, barcode: str, values: list[tuple[str, str]], *, instrument: str = "xn-1",
            evaluate: bool = True) -> list[int]:
    """Ingest an ASTM message with ``values`` [(test, value)] and evaluate it like the running LIS does."""
    outcome = ctx.ingest.ingest(instrument, astm_message(barcode, [(code, v, "") for code, v in values]))
    if evaluate:
        ctx.workflow.evaluate(outcome.result_ids)
    return outcome.result_ids
