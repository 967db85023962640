"""Released reports as :class:`ReportData`, without a database (ORU^R01 builder tests and ``bench/oru_build.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from interfaces.report_data import ReportData, ReportLine, SpecimenInfo

RELEASED = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
ANALYTES = (  # code, LOINC, Vietnamese name, English name, value, unit, range, flags
    ("GLU", "15074-8", "Glucose máu", "Glucose", "7.8", "mmol/L", "3.9-6.4", "H"),
    ("CREA", "14682-9", "Creatinin", "Creatinine", "88", "umol/L", "62-106", ""),
    ("NA", "2951-2", "Natri", "Sodium", "139", "mmol/L", "135-145", ""),
    ("K", "2823-3", "Kali", "Potassium", "3.1", "mmol/L", "3.5-5.1", "L"),
    ("HBSAG", "5196-1", "HBsAg test nhanh", "HBsAg", "Âm tính", "", "Âm tính", ""),
)


def sample_line(index: int, *, comment: str = "", corrected: bool = False) -> ReportLine:
    code, loinc, name_vi, name_en, value, unit, rng, flags = ANALYTES[index % len(ANALYTES)]
    return ReportLine(
        result_id=index + 1, revision=1, test_code=f"{code}{index // len(ANALYTES) or ''}", panel_code=None,
        loinc=loinc, name_vi=name_vi, name_en=name_en, value=value, value_numeric=None, units=unit,
        reference_range=rng, flags=flags, corrected=corrected, observed_at=RELEASED, released_at=RELEASED,
        comment=comment, specimen_barcode="S0001", validator="doctor",
    )


def sample_report(lines: int = 5, *, comment: bool = True, version: int = 1, order: int = 1) -> ReportData:
    """A typical report: ``lines`` OBX (numbers and text, flags), a result comment (NTE) on the first, one SPM."""
    return ReportData(
        order_id=order, placer_number=f"P-{order:06d}", filler_number=f"B{order:08d}", priority="R",
        ordering_clinician="BS. Lê An", department="Nội tổng hợp", ordered_at=RELEASED, patient_id=order,
        patient_name="Nguyễn Thị Bích Ngọc", national_id=f"0790{order:08d}", insurance_number="DN4797912345678",
        mrn=None, sex="F", birth_date=date(1985, 3, 2), address="12 Lê Lợi, phường Bến Nghé, Quận 1",
        visit_code=f"MALK-{order:04d}", visit_kind="outpatient", version=version, correction=version > 1,
        validator="doctor", validator_name="BS. Trần Văn Hùng", released_at=RELEASED,
        specimens=(SpecimenInfo("S0001", "SER", RELEASED, RELEASED),),
        lines=tuple(sample_line(i, comment="Đã kiểm tra lại mẫu" if comment and i == 0 else "",
                                corrected=version > 1 and i == 0) for i in range(lines)),
    )
