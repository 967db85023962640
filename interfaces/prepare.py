"""Building what the outbox sends, once per row (ARCHITECTURE.md principle 3: a retry re-sends the same bytes).

* ``hl7-mllp`` rows get their ``ORU^R01`` (:mod:`interfaces.hl7_oru`),
* ``fhir`` rows their transaction Bundle (:mod:`interfaces.fhir_bundle`) with the signed PDF in
  ``DiagnosticReport.presentedForm`` when the report could be signed,
* ``signed-report`` rows produce the signed PDF version (:mod:`interfaces.reports`) and are then done.

A row that cannot be built (missing data, no signing key) becomes a dead letter whose reason says what to fix;
retrying it from the API rebuilds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from interfaces.fhir_bundle import FhirBuildError, FhirSystems, build_bundle
from interfaces.hl7_oru import OruBuildError, OruOptions, build_oru
from interfaces.report_data import ReportData, ReportDataError, load_report
from interfaces.report_pdf import ReportFontMissing
from interfaces.reports import ReportSettings, find_signed_report, sign_report, store_signed_report
from interfaces.signing import ReportSigner, SigningError
from lis.db import Database
from lis.models import OutboxMessage, OutboxResult, OutboxStatus, utcnow

log = logging.getLogger(__name__)


@dataclass
class Preparer:
    """Builds payloads; ``oru_options`` per HL7 destination name, ``embed_pdf`` destinations get OBX ED."""

    db: Database
    oru_options: dict[str, OruOptions] = field(default_factory=dict)
    fhir_systems: FhirSystems = field(default_factory=FhirSystems)
    report_settings: ReportSettings | None = None
    signer: ReportSigner | None = None
    embed_pdf: frozenset[str] = frozenset()

    def report_for(self, session: Session, row: OutboxMessage) -> ReportData:
        links = session.exec(select(OutboxResult).where(OutboxResult.outbox_id == row.id)).all()
        return load_report(session, row.order_id, [link.result_id for link in links],
                           corrected_ids=[link.result_id for link in links if link.corrected],
                           version=row.report_version, correction=row.correction)

    def _sign(self, report: ReportData) -> tuple[bytes, str]:
        if self.signer is None or self.report_settings is None:
            raise SigningError("report signing is not configured")
        return sign_report(report, self.report_settings, self.signer)

    def prepare(self, row_id: int, *, now: datetime | None = None) -> str:
        """Build the payload of one row; returns the row's status afterwards.

        Three steps so that no database lock is held while hl7apy builds or pyHanko signs (SQLite has one
        writer): read the report, build outside any transaction, then store in a short write transaction.
        """
        now = now or utcnow()
        with self.db.read() as session:
            row = session.get(OutboxMessage, row_id)
            if row is None or row.status != OutboxStatus.PENDING or row.payload is not None:
                return row.status if row else "missing"
            job = _Job(row.kind, row.destination, row.message_id)
            try:
                report: ReportData | None = self.report_for(session, row)
            except ReportDataError as exc:
                report, job.error = None, str(exc)
            if report is not None:
                existing = find_signed_report(session, report.order_id, report.version)
                job.stored_pdf = existing.pdf if existing else None
        if report is not None:
            self._build(job, report, now)
        durable = job.new_signature is not None  # a signed report is a legal record: flush it to disk
        with self.db.write(durable=durable) as session:
            row = session.get(OutboxMessage, row_id)
            if row is None or row.status != OutboxStatus.PENDING or row.payload is not None:
                return row.status if row else "missing"
            if job.new_signature is not None and report is not None:
                store_signed_report(session, report, *job.new_signature)
            if job.error:
                row.status = OutboxStatus.DEAD
                row.last_error = f"cannot build the message: {job.error}"
                row.last_attempt_at = now
                log.warning("outbox %s (%s) dead: %s", row.id, row.destination, row.last_error)
            elif job.kind == "signed-report":
                row.payload, row.payload_type = b"", "signed-report"
                row.status, row.delivered_at, row.last_attempt_at = OutboxStatus.DELIVERED, now, now
                row.attempts += 1
                row.last_error = ""
            else:
                row.payload, row.payload_type = job.payload, job.payload_type
            session.add(row)
            return row.status

    def _build(self, job: _Job, report: ReportData, now: datetime) -> None:
        """CPU work only (no database): fills ``job``."""
        try:
            if job.kind == "signed-report":
                if job.stored_pdf is None:
                    job.new_signature = self._sign(report)
                return
            pdf = job.stored_pdf
            wants_pdf = job.kind == "fhir" or job.destination in self.embed_pdf
            if pdf is None and wants_pdf and self.signer is not None and self.report_settings is not None \
                    and self.signer.available(report.validator):
                try:
                    job.new_signature = self._sign(report)
                    pdf = job.new_signature[0]
                except (SigningError, ReportFontMissing) as exc:
                    log.warning("report %s v%d not signed: %s", report.filler_number, report.version, exc)
            if job.kind == "hl7-mllp":
                options = self.oru_options.get(job.destination, OruOptions())
                job.payload = build_oru(report, job.message_id, options, now=now,
                                        pdf=pdf if job.destination in self.embed_pdf else None)
                job.payload_type = "application/hl7-v2"
            elif job.kind == "fhir":
                job.payload = build_bundle(report, job.message_id, self.fhir_systems, now=now, pdf=pdf)
                job.payload_type = "application/fhir+json"
            else:
                job.error = f"unknown destination kind {job.kind!r}"
        except (OruBuildError, FhirBuildError, SigningError, ReportFontMissing) as exc:
            job.error = str(exc)


@dataclass
class _Job:
    kind: str
    destination: str
    message_id: str
    error: str = ""
    stored_pdf: bytes | None = None
    new_signature: tuple[bytes, str] | None = None
    payload: bytes | None = None
    payload_type: str = ""


# -- building in worker processes (hl7apy and PDF signing are CPU-bound: threads would share one core) ----------
_child: Preparer | None = None


def init_child(url: str, config_json: str, embed_pdf: tuple[str, ...]) -> None:
    """Initializer of a preparer process: its own engine and :class:`Preparer` from the configuration."""
    global _child
    from interfaces.wiring import build_preparer
    from lis.config import Config

    config = Config.model_validate_json(config_json)
    _child = build_preparer(Database.from_url(url, pool_size=2), config, embed_pdf=frozenset(embed_pdf))


def prepare_in_child(row_id: int) -> str:
    assert _child is not None, "init_child was not run in this process"
    return _child.prepare(row_id)


def ready() -> bool:
    return _child is not None
