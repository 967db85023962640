"""Signed reports (Circular 13/2025/TT-BYT): PAdES with pyHanko, verified, tampering detected (issue 7.5)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sqlmodel import select

from interfaces.outbox import REPORT_SIGNING, Destination
from interfaces.report_pdf import ReportFontMissing, find_font
from interfaces.signing import SigningKeyMissing, create_demo_pki, verify_pdf
from interfaces.wiring import build_preparer
from lis.context import LisContext
from lis.models import SignedReport
from tests.interfaces.helpers import correct_result, ensure_validator, outbox_rows, release_order

SIGN = Destination(REPORT_SIGNING, "signed-report")

try:
    find_font()
    _NO_FONT = ""
except ReportFontMissing as exc:
    _NO_FONT = str(exc)
pytestmark = pytest.mark.skipif(bool(_NO_FONT), reason=_NO_FONT or "font present")


def _sign_all(ctx: LisContext) -> None:
    preparer = build_preparer(ctx.db, ctx.config)
    for row in outbox_rows(ctx.db, REPORT_SIGNING):
        preparer.prepare(row.id or 0)


def test_release_produces_a_signed_pdf_that_verifies_and_detects_tampering(ctx: LisContext, tmp_path: Path) -> None:
    ensure_validator(ctx.db)
    pki = create_demo_pki(ctx.config.data_dir, {"doctor": "BS. Trần Văn Hùng"})
    rel = release_order(ctx.db, ctx.catalog.get(), [SIGN], specimen="R0001")
    _sign_all(ctx)
    row = outbox_rows(ctx.db, REPORT_SIGNING)[0]
    assert row.status == "delivered", row.last_error
    with ctx.db.read() as session:
        report = session.exec(select(SignedReport).where(SignedReport.order_id == rel.order_id)).one()
    assert report.version == 1 and report.signer == "doctor" and "Trần Văn Hùng" in report.certificate_subject
    [check] = verify_pdf(report.pdf, [pki / "ca.pem"])
    assert check.ok and check.trusted and check.covers_whole_file and "Trần Văn Hùng" in check.signer
    tampered = bytearray(report.pdf)
    tampered[len(tampered) // 3] ^= 0x01
    try:
        checks = verify_pdf(bytes(tampered), [pki / "ca.pem"])
    except ValueError:
        checks = []
    assert not checks or not any(c.ok for c in checks)
    other_ca = create_demo_pki(tmp_path / "other", ["x"]) / "ca.pem"
    [untrusted] = verify_pdf(report.pdf, [other_ca])
    assert untrusted.intact and untrusted.trusted is False and not untrusted.ok
    if shutil.which("pdftotext"):
        pdf_path = tmp_path / "r.pdf"
        pdf_path.write_bytes(report.pdf)
        text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
        assert "PHIẾU KẾT QUẢ XÉT NGHIỆM" in text and "Nông Thị Hoa" in text and "Định lượng glucose" in text


def test_amendment_is_a_new_signed_version(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    create_demo_pki(ctx.config.data_dir, {"doctor": "BS. Trần Văn Hùng"})
    rel = release_order(ctx.db, ctx.catalog.get(), [SIGN], specimen="R0002")
    correct_result(ctx.db, [SIGN], rel.result_ids[0], "5.5")
    _sign_all(ctx)
    with ctx.db.read() as session:
        versions = session.exec(select(SignedReport).where(SignedReport.order_id == rel.order_id)
                                .order_by(SignedReport.version)).all()
    assert [(v.version, v.correction) for v in versions] == [(1, False), (2, True)]
    assert versions[0].sha256 != versions[1].sha256
    assert all(verify_pdf(v.pdf)[0].intact for v in versions)


def test_missing_key_dead_letters_with_a_clear_reason(ctx: LisContext) -> None:
    ensure_validator(ctx.db)
    release_order(ctx.db, ctx.catalog.get(), [SIGN], specimen="R0003")
    _sign_all(ctx)
    row = outbox_rows(ctx.db, REPORT_SIGNING)[0]
    assert row.status == "dead" and "no signing key for user 'doctor'" in row.last_error


def test_pkcs12_signer_refuses_unknown_user(tmp_path: Path) -> None:
    from interfaces.signing import Pkcs12Signer

    with pytest.raises(SigningKeyMissing):
        Pkcs12Signer(tmp_path).sign(b"%PDF-1.4", "nobody", reason="r", location="l")
