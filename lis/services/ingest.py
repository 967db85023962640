"""Ingest: the seam the analyser drivers call (ARCHITECTURE.md principles 2 and 3).

1. Journal before acknowledge. The analyser links commit the raw bytes to the journal spool
   (:mod:`lis.services.spool`) and acknowledge; :meth:`IngestService.process_entries` (in the ingest worker,
   :mod:`lis.services.ingest_worker`) then *adopts* each entry into ``raw_message`` (durable, idempotent by
   spool key) before anything else. Callers without a spool (the REST API) use :meth:`IngestService.journal`,
   which commits a ``raw_message`` row (status ``received``) directly.
2. :meth:`IngestService.process` parses the journal entry through the instrument's driver, matches each
   observation to specimen, order and catalogue test, and stores results — in one transaction, so a
   crash leaves the entry ``received`` and :meth:`process_pending` finishes it after restart.

Idempotency: a result is keyed by (raw message, position in message, revision), so processing the same
entry twice never creates a second row; a byte-identical resend of a results message from the same
instrument (the ACK was lost) is journaled as ``duplicate`` and creates nothing. Observations that cannot
be matched (unknown specimen, unmapped code, test not ordered) are stored with status ``unmatched``:
never dropped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Row, Table, bindparam, insert, update
from sqlmodel import col, select

from lis.config import DEFAULT_TIMEZONE, Config, InstrumentConfig
from lis.db import Database
from lis.events import EventBus, MessageQuarantined, ResultsIngested
from lis.instrument_report import (
    InstrumentReport,
    MessageKind,
    MessageParseError,
    Observation,
    SpecimenReport,
)
from lis.models import (
    MessageAttachment,
    Order,
    OrderTest,
    RawMessage,
    RawMessageStatus,
    Result,
    ResultStatus,
    Specimen,
    utcnow,
)
from lis.models.types import UTCDateTime
from lis.parsers import ParserRegistry
from lis.services.catalog import CatalogCache, CatalogSnapshot
from lis.services.spool import JournalSpool, SpoolEntry
from lis.services.values import numeric_or_none

log = logging.getLogger(__name__)
_RAW: Table = RawMessage.__table__  # type: ignore[assignment]
_RESULT: Table = Result.__table__  # type: ignore[assignment]
_ATTACHMENT: Table = MessageAttachment.__table__  # type: ignore[assignment]
_SPECIMEN: Table = Specimen.__table__  # type: ignore[assignment]
_ORDER: Table = Order.__table__  # type: ignore[assignment]
_ORDER_TEST: Table = OrderTest.__table__  # type: ignore[assignment]
_LOCAL = ZoneInfo(DEFAULT_TIMEZONE)

# The processing hot path's statements, built once (SQLAlchemy memoises their cache keys and compiled forms).
_RAW_STATE = select(_RAW.c.id, _RAW.c.status, _RAW.c.processed_at, _RAW.c.sha256).where(
    _RAW.c.id.in_(bindparam("b_ids", expanding=True)))
_RAW_DATA = select(_RAW.c.id, _RAW.c.data, _RAW.c.instrument).where(
    _RAW.c.id.in_(bindparam("b_ids", expanding=True)))
_EXISTING_RESULTS = select(_RESULT.c.id, _RESULT.c.sequence, _RESULT.c.status, _RESULT.c.is_qc, _RESULT.c.version
                           ).where(_RESULT.c.raw_message_id == bindparam("b_id"), _RESULT.c.revision == 0)
_UPDATE_RESULT = update(_RESULT).where(_RESULT.c.id == bindparam("b_id"))  # SET columns from the parameters
_UPDATE_RAW = update(_RAW).where(_RAW.c.id == bindparam("b_id"))  # SET columns from the parameters given
# by sha256 alone (its index; with the instrument in the WHERE clause SQLite may pick the instrument index
# and scan every message of that analyser); instrument and status are checked on the few rows found
_EARLIER_COPIES = select(_RAW.c.id, _RAW.c.instrument, _RAW.c.status).where(
    _RAW.c.sha256 == bindparam("b_sha"), _RAW.c.id < bindparam("b_id")).order_by(_RAW.c.id)
_STORED = (RawMessageStatus.PROCESSED, RawMessageStatus.UNMATCHED)
_SPECIMEN_ORDER_TESTS = (  # the specimen, its order and the order's tests in one query
    select(_SPECIMEN.c.id, _SPECIMEN.c.order_id, _SPECIMEN.c.status, _ORDER.c.patient_id,
           _ORDER.c.status.label("order_status"), _ORDER_TEST.c.id.label("ot_id"),
           _ORDER_TEST.c.test_code, _ORDER_TEST.c.status.label("ot_status"),
           _ORDER_TEST.c.specimen_id.label("ot_specimen"))
    .join(_ORDER, _ORDER.c.id == _SPECIMEN.c.order_id)
    .outerjoin(_ORDER_TEST, _ORDER_TEST.c.order_id == _SPECIMEN.c.order_id)
    .where(_SPECIMEN.c.barcode == bindparam("b_barcode"))
    .order_by(_ORDER_TEST.c.id)
)
_SPECIMEN_RECEIVED = update(_SPECIMEN).where(
    _SPECIMEN.c.id == bindparam("b_id"), _SPECIMEN.c.status == "expected",
).values(status="received", received_at=bindparam("b_at"))
_ORDER_STARTED = update(_ORDER).where(_ORDER.c.id == bindparam("b_id"), _ORDER.c.status == "ordered").values(
    status="in_progress")
_TESTS_RESULTED = update(_ORDER_TEST).where(
    _ORDER_TEST.c.id.in_(bindparam("b_ids", expanding=True)), _ORDER_TEST.c.status == "ordered",
).values(status="resulted")
_INSERT_RAW = insert(_RAW).returning(_RAW.c.id)
_ADOPTED = select(_RAW.c.spool_key, _RAW.c.id).where(_RAW.c.spool_key.in_(bindparam("b_keys", expanding=True)))
# one multi-row INSERT ... RETURNING (rows may come back in any order: matched by sequence)
_INSERT_RESULTS = insert(_RESULT).returning(_RESULT.c.id, _RESULT.c.sequence)
# (column, the value when an ingest row leaves it out: its scalar default, else NULL), the id left to SQLite
_COLUMN_DEFAULTS: tuple[tuple[str, Any], ...] = tuple(
    (c.name, c.default.arg if c.default is not None and c.default.is_scalar else None)  # type: ignore[attr-defined]
    for c in _RESULT.columns if c.name != "id"
)
_RESULT_COLUMNS = tuple(name for name, _default in _COLUMN_DEFAULTS)
_DATETIME_POSITIONS = tuple(i for i, column in enumerate(_RESULT_COLUMNS)
                            if isinstance(_RESULT.c[column].type, UTCDateTime))


class UnknownInstrument(LookupError):
    """A message arrived for an instrument that is not configured."""


@dataclass
class IngestOutcome:
    """What happened to one journal entry."""

    raw_message_id: int
    status: str
    report: InstrumentReport | None = None
    result_ids: list[int] = field(default_factory=list)
    unmatched: int = 0
    error: str = ""
    duplicate_of: int | None = None


def nul_byte_error(data: bytes) -> str:
    """A NUL byte inside a message is corruption, never text (LIS2-A2 and HL7 v2 text excludes control
    characters other than the delimiters): the message goes to quarantine rather than have a digit silently
    dropped from a result, and PostgreSQL could not store such text anyway. NULs trailing the message are line
    padding: :meth:`IngestService._parse` strips them."""
    at = data.rstrip(b"\x00").find(b"\x00")
    return f"NUL byte (0x00) at offset {at}: corrupted text, not stored as results" if at >= 0 else ""


def _text(value: str) -> str:
    """Text for a column: a NUL (which PostgreSQL refuses in text) written as ``\\x00``; adoption must never fail
    on what a link wrote, or the instrument's later messages would wait behind it."""
    return value.replace("\x00", "\\x00")


def _raw_row(instrument: str, protocol: str, raw: bytes, peer: str, received_at: datetime, *, direction: str = "in",
             status: str = RawMessageStatus.RECEIVED, error: str = "") -> dict[str, Any]:
    """The ``raw_message`` row of one message (a Core insert: no ORM object on the hot path)."""
    return {"instrument": instrument, "protocol": protocol, "direction": direction, "received_at": received_at,
            "data": raw, "size": len(raw), "sha256": sha256(raw), "control_id": "", "peer": _text(peer)[:200],
            "status": status, "error": _text(error)[:2000], "result_count": 0}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IngestService:
    """Journal, parse, match and store analyser messages."""

    def __init__(
        self,
        db: Database,
        parsers: ParserRegistry,
        bus: EventBus,
        instruments: Callable[[str], InstrumentConfig | None],
        catalog: CatalogCache | None = None,
    ) -> None:
        self.db = db
        self.parsers = parsers
        self.bus = bus
        self._instrument = instruments
        self.catalog = catalog or CatalogCache(db)

    @classmethod
    def from_config(cls, db: Database, parsers: ParserRegistry, bus: EventBus, config: Config) -> IngestService:
        return cls(db, parsers, bus, config.instrument)

    def instrument(self, name: str) -> InstrumentConfig:
        found = self._instrument(name)
        if found is None:
            raise UnknownInstrument(f"instrument {name!r} is not configured")
        return found

    # -- step 1: durable journal ------------------------------------------------------------------
    def journal(self, instrument: str, raw: bytes, *, peer: str = "", direction: str = "in",
                status: str = RawMessageStatus.RECEIVED, error: str = "") -> int:
        """Commit the raw bytes; return the journal id. Call before acknowledging the message."""
        row = _raw_row(instrument, self.instrument(instrument).protocol, raw, peer, utcnow(), direction=direction,
                       status=status, error=error)
        with self.db.transaction() as conn:
            raw_id = int(conn.execute(_INSERT_RAW, row).scalar_one())
        log.info("journaled message %d from %s (%d bytes)", raw_id, instrument, len(raw))
        if status == RawMessageStatus.ERROR:
            self.bus.publish(MessageQuarantined(raw_id, instrument, error))
        return raw_id

    def adopt(self, entries: Sequence[SpoolEntry]) -> list[int]:
        """Move spool entries into the journal (``raw_message``), durably; return their ids in order.

        Idempotent by :attr:`SpoolEntry.key`: an entry adopted before (a crash between this commit and the
        spool release) gets its existing row back. The commit is durable on every database (PostgreSQL too):
        the spool entry is released after this returns, so this row is then the only copy.
        """
        if not entries:
            return []
        with self.db.transaction(durable=True) as conn:
            found = dict(conn.execute(_ADOPTED, {"b_keys": [e.key for e in entries]}).tuples().all())
            ids: list[int] = []
            for e in entries:
                raw_id = found.get(e.key)
                if raw_id is None:
                    row = _raw_row(e.instrument, e.protocol, e.data, e.peer, e.received_at, direction=e.direction,
                                   status=e.status, error=e.error)
                    raw_id = conn.execute(_INSERT_RAW, {**row, "spool_key": e.key}).scalar_one()
                    found[e.key] = raw_id
                ids.append(int(raw_id))
        return ids

    def recover_spool(self, spool: JournalSpool, batch: int = 200) -> int:
        """Start-up: adopt every entry a previous run left in the spool (acknowledged, not yet adopted), then
        release them; :meth:`process_pending` processes them next. Returns how many were adopted."""
        adopted = 0
        while entries := spool.pending(limit=batch):
            for entry, raw_id in zip(entries, self.adopt(entries), strict=True):
                if entry.status == RawMessageStatus.ERROR:
                    self.bus.publish(MessageQuarantined(raw_id, entry.instrument, entry.error))
            spool.delete([e.id for e in entries])
            adopted += len(entries)
        if adopted:
            log.info("adopted %d spool entries left from the previous run", adopted)
        return adopted

    def process_entries(self, entries: Sequence[SpoolEntry]) -> list[tuple[IngestOutcome, Any]]:
        """Adopt spool entries, then parse and store those to process; return (outcome, event) per entry,
        in order. Events are returned, not published: this runs in the processing worker (thread or process)
        and the caller publishes them on its own bus, after the commit.

        The processing transaction commits without waiting for the disk: the adopted ``raw_message`` rows
        are durable, and if a crash loses the results they are still ``received`` and processed again at
        start-up. A batch that fails is processed one entry at a time, so one bad entry holds up no other;
        an entry that fails alone stays ``received`` (the start-up catch-up retries it).
        """
        raw_ids = self.adopt(entries)
        out: list[tuple[IngestOutcome, Any]] = []
        work = [(raw_id, e) for raw_id, e in zip(raw_ids, entries, strict=True) if e.to_process]
        processed: dict[int, tuple[IngestOutcome, Any]] = {}
        if work:
            try:
                pairs = self._apply(self._prepare_items([(raw_id, e.data, e.instrument) for raw_id, e in work]))
                processed = {outcome.raw_message_id: (outcome, event) for outcome, event in pairs}
            except Exception:
                if len(work) > 1:
                    log.warning("batch of %d messages failed, processing one by one", len(work))
                for raw_id, e in work:
                    try:
                        [pair] = self._apply(self._prepare_items([(raw_id, e.data, e.instrument)]))
                        processed[raw_id] = pair
                    except Exception as exc:
                        log.exception("processing message %d from %s failed", raw_id, e.instrument)
                        processed[raw_id] = (IngestOutcome(raw_id, "error", error=f"processing failed: {exc}"),
                                             None)
        for raw_id, e in zip(raw_ids, entries, strict=True):
            if e.to_process:
                out.append(processed[raw_id])
            elif e.status == RawMessageStatus.ERROR:
                out.append((IngestOutcome(raw_id, e.status, error=e.error),
                            MessageQuarantined(raw_id, e.instrument, e.error)))
            else:
                out.append((IngestOutcome(raw_id, e.status), None))
        return out

    # -- step 2: parse and store ------------------------------------------------------------------
    def process(self, raw_id: int, *, data: bytes | None = None, instrument: str | None = None) -> IngestOutcome:
        """Parse and store one journal entry. Safe to call again: never duplicates results.

        ``data``/``instrument`` may be passed by a caller that just journaled them (saves a read);
        otherwise they are read from the journal.
        """
        if data is None or instrument is None:
            return self.process_many([raw_id])[0]
        return self.apply(self._prepare_items([(raw_id, data, instrument)]))[0]

    def process_many(self, raw_ids: Sequence[int]) -> list[IngestOutcome]:
        """Parse and store several journal entries in ONE transaction, in the given order.

        The analyser links hand over what queued up while the single SQLite writer was busy: one
        transaction and one catalogue snapshot for the lot instead of one each. Same guarantees as
        :meth:`process` (idempotent; a crash leaves every entry of the batch ``received``).
        """
        return self.apply(self.prepare(raw_ids))

    def prepare(self, raw_ids: Sequence[int]) -> PreparedBatch:
        """First half of :meth:`process_many`, reads only: read the entries, parse them, look up specimens,
        orders and earlier copies, and work out every row to write. :meth:`apply` writes them; prepare the
        entries of one instrument only after its previous batch is applied (what is read here is then
        current; the updates in :meth:`apply` are conditional, so a concurrent change elsewhere is never
        overwritten).
        """
        if not raw_ids:
            return PreparedBatch([])
        with self.db.engine.connect() as conn:
            found = {row.id: (row.data, row.instrument)
                     for row in conn.execute(_RAW_DATA, {"b_ids": list(raw_ids)})}
        missing = [i for i in raw_ids if i not in found]
        if missing:
            raise LookupError(f"raw message {missing[0]} does not exist")
        return self._prepare_items([(i, *found[i]) for i in raw_ids])

    def apply(self, batch: PreparedBatch) -> list[IngestOutcome]:
        """Second half: write what :meth:`prepare` worked out, in ONE transaction; then publish the events."""
        done = self._apply(batch)
        for _outcome, event in done:  # after the commit (ARCHITECTURE.md principle 5)
            if event is not None:
                self.bus.publish(event)
        return [outcome for outcome, _event in done]

    def _apply(self, batch: PreparedBatch) -> list[tuple[IngestOutcome, Any]]:
        """Write a prepared batch in ONE transaction; return (outcome, event to publish) per entry.

        The commit does not wait for the disk (SQLite ``synchronous=NORMAL``, PostgreSQL
        ``synchronous_commit=off``): the journal entries are already durable and a crash that loses this
        transaction leaves them ``received``, processed again at start-up. Any later durable commit makes
        it durable too (both databases write their log in order).
        """
        if not batch.plans:
            return []
        with self.db.transaction(durable=False) as conn:
            done = [plan.write(conn) for plan in batch.plans]
        outcomes = [outcome for outcome, _event in done]
        for outcome, plan in zip(outcomes, batch.plans, strict=True):
            if outcome.status == RawMessageStatus.ERROR:
                log.warning("message %d from %s quarantined: %s", outcome.raw_message_id, plan.instrument,
                            outcome.error)
            else:
                log.info("message %d from %s: %s, %d results, %d unmatched", outcome.raw_message_id,
                         plan.instrument, outcome.status, len(outcome.result_ids), outcome.unmatched)
        return done

    def ingest(self, instrument: str, raw: bytes, *, peer: str = "") -> IngestOutcome:
        """Journal then process (for callers that acknowledge after the whole thing, e.g. the REST API)."""
        return self.process(self.journal(instrument, raw, peer=peer), data=raw, instrument=instrument)

    def process_pending(self, limit: int = 10_000) -> int:
        """Finish every entry journaled but not processed (after a crash or a restart). Returns the count."""
        with self.db.read() as session:
            ids = session.exec(
                select(RawMessage.id)
                .where(RawMessage.status == RawMessageStatus.RECEIVED, RawMessage.direction == "in")
                .order_by(col(RawMessage.id))
                .limit(limit)
            ).all()
        known = [i for i in ids if i is not None]
        for start in range(0, len(known), 50):
            chunk = known[start:start + 50]
            try:
                self.process_many(chunk)
            except UnknownInstrument:  # one entry of an instrument no longer configured: go one by one
                for raw_id in chunk:
                    try:
                        self.process(raw_id)
                    except UnknownInstrument as exc:
                        log.warning("message %d not processed: %s", raw_id, exc)
        return len(ids)

    # -- internals --------------------------------------------------------------------------------
    def _parse(self, raw_id: int, data: bytes, instrument: str) -> InstrumentReport | str:
        """The driver's report, or the reason it could not be parsed (for the quarantine)."""
        config = self.instrument(instrument)
        reason = nul_byte_error(data)
        if reason:
            return reason
        try:
            return self.parsers.parse(data.rstrip(b"\x00"), config)  # NUL padding after the last record
        except MessageParseError as exc:
            return str(exc) or type(exc).__name__
        except Exception as exc:  # a driver bug must not lose the message or stop the listener
            log.exception("parser crashed on message %d from %s", raw_id, instrument)
            return f"parser error: {type(exc).__name__}: {exc}"

    def _prepare_items(self, items: list[tuple[int, bytes, str]]) -> PreparedBatch:
        parsed = [(raw_id, instrument, self._parse(raw_id, data, instrument)) for raw_id, data, instrument in items]
        catalog = self.catalog.get()
        plans: list[_Plan] = []
        # SQLAlchemy Core, not ORM units of work: this is the analyser hot path
        with self.db.engine.connect() as conn:
            state = {row.id: row for row in conn.execute(_RAW_STATE, {"b_ids": [raw_id for raw_id, _, _ in parsed]})}
            in_batch: dict[tuple[str, str], int] = {}  # (instrument, sha256) -> raw id stored earlier in this batch
            for raw_id, instrument, report in parsed:
                if isinstance(report, str):
                    plans.append(_Plan(raw_id, instrument, RawMessageStatus.ERROR,
                                       {"error": report[:2000], "processed_at": utcnow()}, error=report))
                else:
                    plans.append(self._plan(conn, catalog, state[raw_id], instrument, report, in_batch))
        return PreparedBatch(plans)

    def _plan(self, conn: Connection, catalog: CatalogSnapshot, entry: Row[Any], instrument: str,
              report: InstrumentReport, in_batch: dict[tuple[str, str], int]) -> _Plan:
        """Work out how to store one parsed entry (reads only; the writes are the plan's)."""
        raw_id: int = entry.id
        # never processed (or only failed to parse): no result rows can exist for it yet
        first_time = entry.processed_at is None or entry.status == RawMessageStatus.ERROR
        values: dict[str, Any] = {"control_id": report.control_id[:100], "processed_at": utcnow(), "error": ""}
        if report.kind != MessageKind.RESULTS or not report.specimens:
            status = RawMessageStatus.QUERY if report.kind == MessageKind.QUERY else RawMessageStatus.PROCESSED
            return _Plan(raw_id, instrument, status, values, report=report)
        earlier = in_batch.get((instrument, entry.sha256)) or next(
            (row.id for row in conn.execute(_EARLIER_COPIES, {"b_sha": entry.sha256, "b_id": raw_id})
             if row.instrument == instrument and row.status in _STORED), None)
        if earlier is not None:
            values.update(duplicate_of_id=earlier, error=f"byte-identical resend of message {earlier}")
            return _Plan(raw_id, instrument, RawMessageStatus.DUPLICATE, values, report=report,
                         duplicate_of=earlier)
        in_batch[(instrument, entry.sha256)] = raw_id
        existing = {} if first_time else {
            r.sequence: r for r in conn.execute(_EXISTING_RESULTS, {"b_id": raw_id})
        }
        plan = _Plan(raw_id, instrument, RawMessageStatus.PROCESSED, values, report=report, results=True)
        if first_time:
            # attachments are written once, with the first processing of the entry
            plan.attachments = [
                {"raw_message_id": raw_id, "accession": spec.specimen_id[:64], "name": att.name[:100],
                 "media_type": att.media_type[:100], "data": att.data}
                for spec in report.specimens for att in spec.attachments
            ]
        for spec in report.specimens:
            self._match_specimen(conn, catalog, raw_id, instrument, spec, existing, plan)
        return plan

    def _match_specimen(
        self, conn: Connection, catalog: CatalogSnapshot, raw_id: int, instrument: str, spec: SpecimenReport,
        existing: dict[int, Row[Any]], plan: _Plan,
    ) -> None:
        specimen_id: int | None = None
        patient_id: int | None = None
        ordered: dict[str, tuple[int, str]] = {}  # LIS test code -> (order_test id, status)
        if not spec.is_qc and spec.specimen_id:
            # one query: the specimen, its order and the order's tests
            rows = conn.execute(_SPECIMEN_ORDER_TESTS, {"b_barcode": spec.specimen_id}).all()
            if rows:
                first = rows[0]
                specimen_id, patient_id = first.id, first.patient_id
                for row in rows:
                    if row.ot_id is not None and row.ot_status != "cancelled" \
                            and row.ot_specimen in (None, specimen_id):
                        ordered.setdefault(row.test_code, (row.ot_id, row.ot_status))
                if first.status == "expected":
                    plan.updates.append((_SPECIMEN_RECEIVED, {"b_id": specimen_id, "b_at": utcnow()}))
                if first.order_status == "ordered":
                    plan.updates.append((_ORDER_STARTED, {"b_id": first.order_id}))
        now = utcnow()
        for obs in spec.observations:
            test_code, loinc = self._resolve_test(catalog, instrument, obs)
            reason = ""
            order_test_id: int | None = None
            if test_code is None:
                reason = f"instrument code {obs.instrument_test_code!r} is not mapped to a LIS test"
            elif spec.is_qc:
                pass
            elif not spec.specimen_id:
                reason = "no specimen id in the message"
            elif specimen_id is None:
                reason = f"unknown specimen {spec.specimen_id!r}"
            else:
                found = ordered.get(test_code)
                if found is None:
                    reason = f"test {test_code} was not ordered for specimen {spec.specimen_id}"
                else:
                    order_test_id = found[0]
                    if found[1] == "ordered":
                        plan.resulted.add(order_test_id)
            matched = {
                "test_code": test_code,
                "loinc": (loinc or obs.loinc)[:20],
                "specimen_id": specimen_id if not spec.is_qc else None,
                "patient_id": patient_id if not spec.is_qc else None,
                "order_test_id": order_test_id,
            }
            result = existing.get(obs.sequence)
            if result is not None:
                status = result.status
                if status == ResultStatus.UNMATCHED and not reason:
                    # re-processing after the lab fixed a code map or registered the specimen
                    status = ResultStatus.RECEIVED
                    plan.updates.append((_UPDATE_RESULT, {
                        **matched, "status": status, "unmatched_reason": "", "version": result.version + 1,
                        "updated_at": now, "b_id": result.id}))
                plan.kept.append((result.id, result.is_qc, status))
                continue
            plan.new_rows.append({
                "raw_message_id": raw_id, "sequence": obs.sequence, "revision": 0, "version": 1,
                "instrument": instrument, "accession": spec.specimen_id[:64],
                "instrument_test_code": obs.instrument_test_code[:64], "value": obs.value,
                "value_numeric": numeric_or_none(obs.value), "units": (obs.unit_override or obs.units)[:40],
                "reference_range": obs.reference_range[:100], "abnormal_flags": obs.abnormal_flags[:40],
                "result_status": obs.result_status[:2],
                "status": ResultStatus.UNMATCHED if reason else ResultStatus.RECEIVED,
                "unmatched_reason": reason[:200], "is_qc": spec.is_qc,
                "control_material": spec.control_material[:100], "control_lot": spec.control_lot[:64],
                "control_level": spec.control_level[:20], "observed_at": _aware(obs.observed_at),
                "received_at": now, "comment": obs.comment, "supersedes_id": None, "updated_by": "",
                "updated_at": None, **matched,
            })

    @staticmethod
    def _resolve_test(catalog: CatalogSnapshot, instrument: str, obs: Observation) -> tuple[str | None, str]:
        """Instrument code → LIS test: the lab's map, then the profile's map, then same code, then LOINC."""
        for code in (catalog.code_maps.get((instrument, obs.instrument_test_code)), obs.mapped_test_code,
                     obs.instrument_test_code):
            if code and code in catalog.by_code:
                return code, catalog.by_code[code].loinc
        if obs.loinc and obs.loinc in catalog.by_loinc:
            test = catalog.by_loinc[obs.loinc]
            return test.code, test.loinc
        return None, obs.loinc


@dataclass
class _Stored:
    """Result ids of one processing, sorted into patient / QC / unmatched for the event."""

    ids: list[int] = field(default_factory=list)
    patient: list[int] = field(default_factory=list)
    qc: list[int] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)

    def add(self, result_id: int, is_qc: bool, status: str) -> None:
        self.ids.append(result_id)
        if status == ResultStatus.UNMATCHED:
            self.unmatched.append(result_id)
        elif is_qc:
            self.qc.append(result_id)
        else:
            self.patient.append(result_id)


@dataclass
class _Plan:
    """Everything processing one journal entry writes, worked out before the write transaction."""

    raw_id: int
    instrument: str
    status: str  # the journal entry's status when nothing is stored (error, query, duplicate, processed)
    values: dict[str, Any]  # further journal entry columns to set
    report: InstrumentReport | None = None
    error: str = ""
    duplicate_of: int | None = None
    results: bool = False  # a results message: rows below, status processed/unmatched decided on write
    attachments: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)  # conditional UPDATEs, in order
    resulted: set[int] = field(default_factory=set)  # order_test ids to mark 'resulted'
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    kept: list[tuple[int, bool, str]] = field(default_factory=list)  # rows from an earlier processing

    def write(self, conn: Connection) -> tuple[IngestOutcome, Any]:
        """Execute the plan in the caller's transaction; return the outcome and the event to publish."""
        raw_id = self.raw_id
        if not self.results:
            conn.execute(_UPDATE_RAW, {**self.values, "status": self.status, "b_id": raw_id})
            if self.status == RawMessageStatus.ERROR:
                return (IngestOutcome(raw_id, self.status, error=self.error),
                        MessageQuarantined(raw_id, self.instrument, self.error))
            return IngestOutcome(raw_id, self.status, self.report, duplicate_of=self.duplicate_of), None
        if self.attachments:
            conn.execute(insert(_ATTACHMENT), self.attachments)
        for statement, params in self.updates:
            conn.execute(statement, params)
        if self.resulted:
            conn.execute(_TESTS_RESULTED, {"b_ids": sorted(self.resulted)})
        stored = _Stored()
        for result_id, is_qc, status in self.kept:
            stored.add(result_id, is_qc, status)
        if self.new_rows:
            ids_by_sequence = _insert_results(conn, self.new_rows)
            for row in self.new_rows:
                stored.add(ids_by_sequence[row["sequence"]], row["is_qc"], row["status"])
        unmatched = len(stored.unmatched)
        status = RawMessageStatus.UNMATCHED if unmatched else RawMessageStatus.PROCESSED
        conn.execute(_UPDATE_RAW, {
            **self.values, "status": status, "b_id": raw_id, "result_count": len(stored.ids),
            "error": f"{unmatched} observation(s) unmatched" if unmatched else ""})
        event = ResultsIngested(
            raw_message_id=raw_id, instrument=self.instrument, result_ids=tuple(stored.patient),
            qc_result_ids=tuple(stored.qc), unmatched_ids=tuple(stored.unmatched),
        ) if stored.ids else None
        return IngestOutcome(raw_id, status, self.report, stored.ids, unmatched), event


@dataclass
class PreparedBatch:
    """What :meth:`IngestService.prepare` worked out for :meth:`IngestService.apply` to write."""

    plans: list[_Plan]


_SQLITE_INSERT_SQL: dict[int, str] = {}


def _insert_results(conn: Connection, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Insert new result rows in one statement; return {sequence: id}.

    On SQLite the statement is sent through the driver directly (one multi-row ``INSERT ... RETURNING``, SQLite
    >= 3.35): SQLAlchemy's per-row parameter processing cost more than SQLite's own work on this hot path. The
    values are converted exactly as the column types would (UTC timestamps as SQLAlchemy's SQLite text format).
    """
    if conn.dialect.name != "sqlite":
        return {seq: rid for rid, seq in conn.execute(_INSERT_RESULTS, rows)}
    ids: dict[int, int] = {}
    for start in range(0, len(rows), 200):  # well under SQLite's 32,766 bound parameters
        chunk = rows[start:start + 200]
        sql = _SQLITE_INSERT_SQL.get(len(chunk))
        if sql is None:
            row_marks = "(" + ", ".join("?" * len(_RESULT_COLUMNS)) + ")"
            sql = (f"INSERT INTO result ({', '.join(_RESULT_COLUMNS)}) VALUES "
                   f"{', '.join([row_marks] * len(chunk))} RETURNING id, sequence")
            _SQLITE_INSERT_SQL[len(chunk)] = sql
        params: list[Any] = []
        texts: dict[datetime, str] = {}  # received_at is the same for every row: formatted once
        for row in chunk:
            values = [row.get(column, default) for column, default in _COLUMN_DEFAULTS]
            for i in _DATETIME_POSITIONS:
                value = values[i]
                if value is not None:
                    text = texts.get(value)
                    if text is None:  # as lis.models.types.UTCDateTime + SQLAlchemy's SQLite DATETIME store it
                        text = texts[value] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                    values[i] = text
            params += values
        ids.update((seq, rid) for rid, seq in conn.exec_driver_sql(sql, tuple(params)))
    return ids


def _aware(value: datetime | None) -> datetime | None:
    """Analysers' naive timestamps are local time (ARCHITECTURE.md "Time")."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=_LOCAL)
