"""Signed report versions (Circular 13/2025/TT-BYT): generate the PDF of a released report, sign it with the
validator's certificate, store it. An amendment is a new version; a stored version is never replaced.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from interfaces.report_data import ReportData
from interfaces.report_pdf import Letterhead, render_report
from interfaces.signing import ReportSigner, SigningKeyMissing
from lis.models import SignedReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSettings:
    letterhead: Letterhead
    font: tuple[Path, Path | None]
    location: str = "Việt Nam"


def find_signed_report(session: Session, order_id: int, version: int) -> SignedReport | None:
    return session.exec(
        select(SignedReport).where(SignedReport.order_id == order_id, SignedReport.version == version)
    ).first()


def latest_signed_report(session: Session, order_id: int) -> SignedReport | None:
    return session.exec(
        select(SignedReport).where(SignedReport.order_id == order_id).order_by(col(SignedReport.version).desc())
    ).first()


def sign_report(report: ReportData, settings: ReportSettings, signer: ReportSigner) -> tuple[bytes, str]:
    """Render and sign; returns (signed PDF, certificate subject). Raises SigningError / ReportFontMissing."""
    if not signer.available(report.validator):
        raise SigningKeyMissing(f"no signing key for user {report.validator or '(none)'!r}")
    unsigned = render_report(report, settings.letterhead, font=settings.font)
    reason = (f"Phê duyệt kết quả xét nghiệm {report.filler_number}"
              + (f" (phiên bản {report.version})" if report.version > 1 else ""))
    signed = signer.sign(unsigned, report.validator, reason=reason, location=settings.location)
    return signed.pdf, signed.certificate_subject


def store_signed_report(session: Session, report: ReportData, pdf: bytes, subject: str) -> SignedReport:
    """Insert the version (the unique (order, version) key makes a concurrent second insert a no-op)."""
    existing = find_signed_report(session, report.order_id, report.version)
    if existing is not None:
        return existing
    row = SignedReport(order_id=report.order_id, version=report.version, correction=report.correction,
                       signer=report.validator, certificate_subject=subject[:400],
                       sha256=hashlib.sha256(pdf).hexdigest(), pdf=pdf)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = find_signed_report(session, report.order_id, report.version)
        assert found is not None
        return found
    log.info("signed report %s v%d stored (signer %s)", report.filler_number, report.version, report.validator)
    return row
