"""Ingest: journal before parse, matching, the unmatched queue, idempotency and crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlmodel import func, select

from lis.context import LisContext
from lis.events import MessageQuarantined, ResultsIngested
from lis.models import RawMessage, RawMessageStatus, Result, ResultStatus, TestCodeMap
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData
from tests.lis.astm_fixtures import astm_message

CBC = [("WBC", "7,41", "10*3/uL"), ("RBC", "4.52", "10*6/uL"), ("HGB", "135", "g/L"), ("PLT", "250", "10*3/uL")]


def order(ctx: LisContext, specimen: str, tests: list[str], national_id: str = "079085001234") -> None:
    with ctx.db.write() as session:
        create_order(session, ctx.catalog.get(), OrderRequest(
            patient=PatientData(name="Nông Thị Hoa", national_id=national_id, sex="F"),
            specimen_id=specimen, tests=tests), "test")


def results(ctx: LisContext) -> list[Result]:
    with ctx.db.read() as session:
        return list(session.exec(select(Result).order_by(Result.id)).all())


def test_matched_message_stores_results_linked_to_raw(ctx: LisContext) -> None:
    order(ctx, "S100", ["CBC"])
    seen: list[ResultsIngested] = []
    ctx.bus.subscribe(ResultsIngested, seen.append)
    outcome = ctx.ingest.ingest("xn-1", astm_message("S100", CBC))
    assert outcome.status == RawMessageStatus.PROCESSED
    rows = results(ctx)
    assert [(r.test_code, r.value, r.status) for r in rows] == [
        ("WBC", "7,41", "received"), ("RBC", "4.52", "received"), ("HGB", "135", "received"),
        ("PLT", "250", "received"),
    ]
    assert rows[0].value_numeric == pytest.approx(7.41)  # decimal comma
    assert {r.raw_message_id for r in rows} == {outcome.raw_message_id}
    assert rows[0].loinc == "6690-2" and rows[0].patient_id is not None and rows[0].observed_at is not None
    assert seen and len(seen[0].result_ids) == 4


def test_unknown_specimen_and_unmapped_code_go_to_unmatched(ctx: LisContext) -> None:
    order(ctx, "S200", ["GLU"])
    ctx.ingest.ingest("xn-1", astm_message("NOPE", [("WBC", "5", "")]))
    ctx.ingest.ingest("xn-1", astm_message("S200", [("GLU", "5.4", "mmol/L"), ("ZZZ", "1", ""), ("WBC", "6", "")]))
    rows = results(ctx)
    assert [(r.accession, r.instrument_test_code, r.status) for r in rows] == [
        ("NOPE", "WBC", "unmatched"), ("S200", "GLU", "received"), ("S200", "ZZZ", "unmatched"),
        ("S200", "WBC", "unmatched"),
    ]
    assert "unknown specimen" in rows[0].unmatched_reason
    assert "not mapped" in rows[2].unmatched_reason
    assert "not ordered" in rows[3].unmatched_reason


def test_reprocess_never_duplicates_and_rematches_after_a_code_map(ctx: LisContext) -> None:
    order(ctx, "S300", ["GLU"])
    outcome = ctx.ingest.ingest("xn-1", astm_message("S300", [("GLUC", "5.4", "mmol/L")]))
    assert outcome.status == RawMessageStatus.UNMATCHED
    ctx.ingest.process(outcome.raw_message_id)
    assert len(results(ctx)) == 1
    with ctx.db.write() as session:
        session.add(TestCodeMap(instrument="xn-1", instrument_code="GLUC", test_code="GLU"))
    ctx.catalog.invalidate()
    again = ctx.ingest.process(outcome.raw_message_id)
    assert again.status == RawMessageStatus.PROCESSED
    rows = results(ctx)
    assert len(rows) == 1 and rows[0].status == ResultStatus.RECEIVED and rows[0].test_code == "GLU"
    assert rows[0].version == 2


def test_byte_identical_resend_is_a_duplicate(ctx: LisContext) -> None:
    order(ctx, "S400", ["CBC"])
    message = astm_message("S400", CBC)
    first = ctx.ingest.ingest("xn-1", message)
    second = ctx.ingest.ingest("xn-1", message)
    assert second.status == RawMessageStatus.DUPLICATE and second.duplicate_of == first.raw_message_id
    assert len(results(ctx)) == 4


def test_qc_observations_are_kept_with_lot(ctx: LisContext) -> None:
    ctx.ingest.ingest("xn-1", astm_message("QC-HIGH", [("WBC", "18.2", "")], qc=True, lot="LOT42"))
    (row,) = results(ctx)
    assert row.is_qc and row.status == ResultStatus.RECEIVED and row.test_code == "WBC"


def test_garbage_is_quarantined_and_kept(ctx: LisContext) -> None:
    seen: list[MessageQuarantined] = []
    ctx.bus.subscribe(MessageQuarantined, seen.append)
    outcome = ctx.ingest.ingest("xn-1", b"\x00\x01 not astm at all \xff")
    assert outcome.status == RawMessageStatus.ERROR and outcome.error
    with ctx.db.read() as session:
        raw = session.get(RawMessage, outcome.raw_message_id)
    assert raw is not None and raw.data == b"\x00\x01 not astm at all \xff" and raw.status == "error"
    assert seen and seen[0].raw_message_id == outcome.raw_message_id


CRASH_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from lis.config import Config, InstrumentConfig
    from lis.context import LisContext
    from lis.db import Database
    from drivers.wiring import register_parsers
    url, stage, data = sys.argv[1], sys.argv[2], sys.stdin.buffer.read()
    config = Config(data_dir=".", database={"url": url}, instruments=[InstrumentConfig(
        name="xn-1", profile="generic-astm", protocol="astm", port=15001)])
    ctx = LisContext(config, Database.from_url(url))
    register_parsers(ctx.parsers)
    raw_id = ctx.ingest.journal("xn-1", data)
    print(raw_id, flush=True)
    if stage == "after-journal":
        os.kill(os.getpid(), signal.SIGKILL)
    from sqlalchemy.engine.base import Connection
    def dying_commit(self):  # the result rows are inserted, the transaction is not committed yet
        os.kill(os.getpid(), signal.SIGKILL)
    Connection._commit_impl = dying_commit
    ctx.ingest.process(raw_id)
""")


@pytest.mark.parametrize("stage", ["after-journal", "mid-process"])
def test_kill_between_journal_and_parse_then_reprocess(ctx: LisContext, stage: str, tmp_path: Path) -> None:
    """kill -9 after the journal commit (or inside the result transaction): nothing lost, nothing doubled."""
    order(ctx, "S500", ["CBC"])
    url = ctx.db.engine.url.render_as_string(hide_password=False)
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, url, stage], input=astm_message("S500", CBC),
                          capture_output=True, cwd=Path(__file__).resolve().parents[2], timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    raw_id = int(proc.stdout.split()[0])
    with ctx.db.read() as session:
        assert session.get(RawMessage, raw_id).status == RawMessageStatus.RECEIVED
        assert session.exec(select(func.count()).select_from(Result)).one() == 0
    assert ctx.ingest.process_pending() == 1
    assert ctx.ingest.process_pending() == 0
    ctx.ingest.process(raw_id)  # a manual reprocess on top: still exactly one set
    rows = results(ctx)
    assert len(rows) == 4 and {r.raw_message_id for r in rows} == {raw_id}


def test_identical_messages_in_one_batch_store_once(ctx: LisContext) -> None:
    """A resend journaled before the original was processed, both processed in one batch: one result set."""
    order(ctx, "S100", ["CBC"])
    raw = astm_message("S100", CBC)
    first, second = ctx.ingest.journal("xn-1", raw), ctx.ingest.journal("xn-1", raw)
    outcomes = ctx.ingest.process_many([first, second])
    assert [o.status for o in outcomes] == [RawMessageStatus.PROCESSED, RawMessageStatus.DUPLICATE]
    assert outcomes[1].duplicate_of == first
    rows = results(ctx)
    assert len(rows) == 4 and {r.raw_message_id for r in rows} == {first}


def test_a_nul_byte_inside_a_message_quarantines_it_and_trailing_padding_is_ignored(ctx: LisContext) -> None:
    """A NUL is corruption (it may have replaced a digit): kept in quarantine with the reason, on both
    databases (PostgreSQL cannot store NUL in text at all); NUL padding after the last record is harmless."""
    from tests.drivers.transports.helpers import make_orders

    make_orders(ctx, {"NUL1": ["GLU"], "NUL2": ["GLU"]})
    head = b"H|\\^&|||XN^1|||||||P|LIS2-A2|20261127080000\rP|1\r"
    corrupted = ctx.ingest.ingest("xn-1", head + b"O|1|NUL1||^^^GLU\rR|1|^^^GLU|5.\x005|mmol/L||N||F\rL|1|N\r")
    assert corrupted.status == "error" and corrupted.error.startswith("NUL byte (0x00) at offset")
    padded = ctx.ingest.ingest("xn-1", head + b"O|1|NUL2||^^^GLU\rR|1|^^^GLU|6.1|mmol/L||N||F\rL|1|N\r\x00\x00")
    assert padded.status == "processed" and len(padded.result_ids) == 1
    with ctx.db.read() as session:
        values = session.exec(select(Result.accession, Result.value)).all()
    assert [tuple(v) for v in values] == [("NUL2", "6.1")]
