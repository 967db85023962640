"""Insurance export, table XML4 "chỉ tiêu chi tiết dịch vụ cận lâm sàng" (Decision 130/QĐ-BYT as amended by
4750/QĐ-BYT): one ``CHI_TIET_CLS`` record per released paraclinical result.

Fields: MA_LK (visit code), STT (sequence within the visit), MA_DICH_VU (the ordered service: panel code, else
test code), MA_CHI_SO (analyte code), TEN_CHI_SO (analyte name, Vietnamese), GIA_TRI (value), DON_VI_DO (unit),
MO_TA (reference range and comment), KET_LUAN (interpretation from the flags), NGAY_KQ (result time,
``yyyyMMddHHmm`` local time), MA_BS_DOC_KQ (the validator), DU_PHONG (reserved, empty).

MA_DICH_VU and MA_BS_DOC_KQ carry the LIS codes; a site whose insurer expects the national service catalogue code
or the practising-certificate number maps them in the catalogue and user records first (see README).
Results without a visit (no MA_LK) cannot be claimed and are counted as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from lis.models import Encounter, Order, OrderTest, Result, ResultStatus, TestDefinition

FIELDS = ("MA_LK", "STT", "MA_DICH_VU", "MA_CHI_SO", "TEN_CHI_SO", "GIA_TRI", "DON_VI_DO", "MO_TA", "KET_LUAN",
          "NGAY_KQ", "MA_BS_DOC_KQ", "DU_PHONG")
_CONCLUSION = {"H": "Cao", "HH": "Rất cao", "L": "Thấp", "LL": "Rất thấp", "A": "Bất thường", "AA": "Rất bất thường",
               "N": "Bình thường", "<": "Dưới ngưỡng đo", ">": "Trên ngưỡng đo"}


@dataclass(frozen=True, slots=True)
class Xml4Record:
    ma_lk: str
    stt: int
    ma_dich_vu: str
    ma_chi_so: str
    ten_chi_so: str
    gia_tri: str
    don_vi_do: str
    mo_ta: str
    ket_luan: str
    ngay_kq: str
    ma_bs_doc_kq: str
    du_phong: str = ""

    def values(self) -> tuple[str, ...]:
        return (self.ma_lk, str(self.stt), self.ma_dich_vu, self.ma_chi_so, self.ten_chi_so, self.gia_tri,
                self.don_vi_do, self.mo_ta, self.ket_luan, self.ngay_kq, self.ma_bs_doc_kq, self.du_phong)


@dataclass
class Xml4Summary:
    records: int = 0
    skipped_no_visit: int = 0


def _conclusion(flags: str, has_range: bool) -> str:
    words = [_CONCLUSION[f] for f in flags.replace(",", " ").split() if f in _CONCLUSION]
    if words:
        return ", ".join(words)
    return "Bình thường" if has_range else ""


def xml4_records(session: Session, since: datetime, until: datetime | None = None, *, timezone: str,
                 summary: Xml4Summary | None = None, batch: int = 2000) -> Iterator[Xml4Record]:
    """Released patient results with ``released_at`` in [since, until), grouped by visit, in a stable order."""
    summary = summary if summary is not None else Xml4Summary()
    tz = ZoneInfo(timezone)
    released_at = col(Result.released_at)
    stmt = (
        select(Result, OrderTest.panel_code, Encounter.visit_code, TestDefinition.name_vi, TestDefinition.unit)
        .join(OrderTest, col(Result.order_test_id) == OrderTest.id)
        .join(Order, col(OrderTest.order_id) == Order.id)
        .join(Encounter, col(Order.encounter_id) == Encounter.id, isouter=True)
        .join(TestDefinition, col(Result.test_code) == TestDefinition.code, isouter=True)
        .where(Result.status == ResultStatus.RELEASED, col(Result.is_qc).is_(False), released_at >= since)
        .order_by(Encounter.visit_code, col(Result.released_at), col(Result.id))
    )
    if until is not None:
        stmt = stmt.where(released_at < until)
    counters: dict[str, int] = {}
    for result, panel, visit, name_vi, unit in session.exec(stmt).all():
        if not visit:
            summary.skipped_no_visit += 1
            continue
        counters[visit] = counters.get(visit, 0) + 1
        when = (result.released_at or result.updated_at or result.received_at).astimezone(tz)
        description = f"Khoảng tham chiếu: {result.reference_range}" if result.reference_range else ""
        if result.comment:
            description = f"{description}; {result.comment}" if description else result.comment
        summary.records += 1
        yield Xml4Record(
            ma_lk=visit, stt=counters[visit], ma_dich_vu=panel or result.test_code or "",
            ma_chi_so=result.test_code or result.instrument_test_code, ten_chi_so=name_vi or result.test_code or "",
            gia_tri=result.value, don_vi_do=result.units or unit or "", mo_ta=description,
            ket_luan=_conclusion(result.abnormal_flags, bool(result.reference_range)),
            ngay_kq=when.strftime("%Y%m%d%H%M"),
            ma_bs_doc_kq=getattr(result, "released_by", "") or result.updated_by,
        )


def write_xml4(records: Iterator[Xml4Record], out: TextIO) -> int:
    """Stream the XML4 document (UTF-8) to ``out``; returns the number of records."""
    out.write('<?xml version="1.0" encoding="utf-8"?>\n<CHITIEU_CHITIET_DICHVUCANLAMSANG>\n  <DSACH_CHI_TIET_CLS>\n')
    count = 0
    for record in records:
        out.write("    <CHI_TIET_CLS>\n")
        for name, value in zip(FIELDS, record.values(), strict=True):
            out.write(f"      <{name}>{escape(value)}</{name}>\n" if value else f"      <{name}/>\n")
        out.write("    </CHI_TIET_CLS>\n")
        count += 1
    out.write("  </DSACH_CHI_TIET_CLS>\n</CHITIEU_CHITIET_DICHVUCANLAMSANG>\n")
    return count


def parse_since(value: str, timezone: str) -> datetime:
    """A CLI date (``2026-11-26`` or ISO date-time); naive values are local time."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed.astimezone(UTC)
