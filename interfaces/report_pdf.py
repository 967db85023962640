"""The laboratory report as a PDF (fpdf2), in Vietnamese with English subtitles: letterhead, patient, order,
results with units, reference ranges and flags, and the validator (Circular 13/2025/TT-BYT: a lab result of the
electronic medical record, signed afterwards by :mod:`interfaces.signing`).

Vietnamese needs a Unicode TrueType font with its precomposed letters (ấ ầ ẩ ẫ ậ đ ư ơ ...): DejaVu Sans from
Debian's ``fonts-dejavu-core`` by default, or any TTF put in ``<data_dir>/fonts/report.ttf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from interfaces.report_data import ReportData

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
_FLAG_VI = {"H": "Cao", "HH": "Rất cao", "L": "Thấp", "LL": "Rất thấp", "A": "Bất thường", "N": ""}


class ReportFontMissing(RuntimeError):
    """No font with Vietnamese glyphs was found."""


@dataclass(frozen=True, slots=True)
class Letterhead:
    lab_name: str = "Open LIS"
    address: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"


def find_font(data_dir: Path | None = None) -> tuple[Path, Path | None]:
    """(regular, bold or None): ``<data_dir>/fonts/report.ttf`` first, then the system candidates."""
    candidates = []
    if data_dir is not None:
        candidates.append(Path(data_dir) / "fonts" / "report.ttf")
    candidates += [Path(p) for p in FONT_CANDIDATES]
    for path in candidates:
        if path.exists():
            bold = path.with_name(path.name.replace("-Regular", "-Bold").replace("Sans.ttf", "Sans-Bold.ttf"))
            if path.name == "report.ttf":
                bold = path.with_name("report-bold.ttf")
            return path, (bold if bold.exists() and bold != path else None)
    raise ReportFontMissing("no TrueType font with Vietnamese glyphs: install Debian package fonts-dejavu-core "
                            "or copy a TTF to <data_dir>/fonts/report.ttf")


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


def render_report(report: ReportData, letterhead: Letterhead, *, font: tuple[Path, Path | None]) -> bytes:
    """The unsigned PDF of ``report``."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    regular, bold = font
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_title(f"Phiếu kết quả xét nghiệm {report.filler_number}")
    pdf.set_author(letterhead.lab_name)
    pdf.set_creator("Open LIS")
    pdf.add_font("Report", "", str(regular))
    pdf.add_font("Report", "B", str(bold or regular))
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    tz = letterhead.timezone

    pdf.set_font("Report", "B", 13)
    pdf.cell(0, 7, letterhead.lab_name, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Report", "", 9)
    if letterhead.address:
        pdf.cell(0, 5, letterhead.address, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Report", "B", 15)
    pdf.cell(0, 8, "PHIẾU KẾT QUẢ XÉT NGHIỆM", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Report", "", 9)
    pdf.cell(0, 5, "Laboratory report", align="C", new_x="LMARGIN", new_y="NEXT")
    if report.version > 1:
        pdf.set_font("Report", "B", 10)
        kind = "ĐÍNH CHÍNH (corrected)" if report.correction else "BỔ SUNG (amended)"
        pdf.cell(0, 6, f"{kind} — phiên bản {report.version}, thay thế phiên bản trước", align="C",
                 new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    sex = {"M": "Nam", "F": "Nữ"}.get(report.sex, "Không rõ")
    info = [
        ("Họ và tên", report.patient_name, "Giới tính", sex),
        ("Ngày sinh", report.birth_date.strftime("%d/%m/%Y") if report.birth_date else "", "CCCD",
         report.national_id or ""),
        ("Số thẻ BHYT", report.insurance_number or "", "Mã lượt khám (MA_LK)", report.visit_code or ""),
        ("Khoa / phòng", report.department, "Bác sĩ chỉ định", report.ordering_clinician),
        ("Số phiếu (LIS)", report.filler_number, "Số chỉ định (HIS)", report.placer_number or ""),
        ("Mã bệnh phẩm", ", ".join(s.barcode for s in report.specimens), "Lấy mẫu",
         _local(next((s.collected_at for s in report.specimens if s.collected_at), None), tz)),
    ]
    pdf.set_font("Report", "", 9)
    for k1, v1, k2, v2 in info:
        pdf.set_font("Report", "B", 9)
        pdf.cell(32, 5.5, k1 + ":")
        pdf.set_font("Report", "", 9)
        pdf.cell(58, 5.5, v1)
        pdf.set_font("Report", "B", 9)
        pdf.cell(43, 5.5, k2 + ":")
        pdf.set_font("Report", "", 9)
        pdf.cell(0, 5.5, v2, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    pdf.set_font("Report", "", 9)
    heading = FontFace(emphasis="BOLD", fill_color=(225, 230, 240))
    with pdf.table(col_widths=(62, 28, 24, 40, 26), text_align=("LEFT", "RIGHT", "LEFT", "CENTER", "CENTER"),
                   headings_style=heading, line_height=5.5) as table:
        table.row(["Xét nghiệm (Test)", "Kết quả", "Đơn vị", "Khoảng tham chiếu", "Cờ (Flag)"])
        for line in report.lines:
            flag = " ".join(f for f in line.flags.split() if f)
            flag_text = f"{flag} {_FLAG_VI.get(flag, '')}".strip() if flag else ""
            name = (line.name_vi or line.test_code) + (" *" if line.corrected else "")
            table.row([name, line.value, line.units, line.reference_range, flag_text])
    if any(line.corrected for line in report.lines):
        pdf.set_font("Report", "", 8)
        pdf.cell(0, 5, "* Kết quả đã được đính chính (corrected result).", new_x="LMARGIN", new_y="NEXT")
    comments = [(line.name_vi or line.test_code, line.comment) for line in report.lines if line.comment]
    if comments:
        pdf.ln(2)
        pdf.set_font("Report", "B", 9)
        pdf.cell(0, 5, "Ghi chú:", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Report", "", 9)
        for name, text in comments:
            pdf.multi_cell(0, 5, f"{name}: {text}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Report", "", 9)
    pdf.cell(0, 5, f"Thời gian trả kết quả: {_local(report.released_at, tz)}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(120)
    pdf.set_font("Report", "B", 10)
    pdf.cell(0, 6, "NGƯỜI DUYỆT KẾT QUẢ", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(120)
    pdf.set_font("Report", "", 9)
    pdf.cell(0, 5, "(Ký số / digitally signed)", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_x(120)
    pdf.set_font("Report", "B", 10)
    pdf.cell(0, 6, report.validator_name or report.validator, align="C", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
