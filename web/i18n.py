"""UI texts in Vietnamese and English (every label goes through :func:`t`), and local date formatting.

Vietnamese shows dates as DD/MM/YYYY; English as YYYY-MM-DD (unambiguous for the lab's foreign staff).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

LANGUAGES = ("vi", "en")

TEXTS: dict[str, tuple[str, str]] = {  # key: (vi, en)
    # login and session
    "username": ("Tên đăng nhập", "Username"),
    "password": ("Mật khẩu", "Password"),
    "login": ("Đăng nhập", "Log in"),
    "logout": ("Đăng xuất", "Log out"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu", "Wrong username or password"),
    "login_locked": ("Tài khoản bị khóa do đăng nhập sai nhiều lần; vui lòng thử lại sau",
                     "Account locked after repeated failures; try again later"),
    "required": ("Bắt buộc nhập", "Required"),
    "session_expired": ("Phiên làm việc đã hết hạn, vui lòng đăng nhập lại",
                        "Your session has expired, please log in again"),
    "forbidden": ("Bạn không có quyền truy cập trang này", "You are not allowed to open this page"),
    "not_allowed": ("Vai trò của bạn không được phép thực hiện thao tác này", "Your role may not do this"),
    "language": ("Ngôn ngữ", "Language"),
    "switch_language": ("English", "Tiếng Việt"),
    "role": ("Vai trò", "Role"),
    # navigation
    "nav_dashboard": ("Tổng quan", "Dashboard"),
    "nav_worklist": ("Duyệt kết quả", "Worklist"),
    "nav_critical": ("Giá trị nguy hiểm", "Critical values"),
    "nav_patients": ("Bệnh nhân", "Patients"),
    "nav_orders": ("Chỉ định & nhận mẫu", "Orders & reception"),
    "nav_qc": ("Nội kiểm (QC)", "Quality control"),
    "nav_instruments": ("Máy xét nghiệm", "Instruments"),
    "nav_outbox": ("Gửi kết quả EMR", "EMR outbox"),
    "nav_admin": ("Quản trị", "Administration"),
    "nav_audit": ("Nhật ký hệ thống", "Audit log"),
    # roles
    "role_technician": ("Kỹ thuật viên", "Technician"),
    "role_validator": ("Bác sĩ duyệt", "Validator"),
    "role_manager": ("Quản lý", "Manager"),
    "role_admin": ("Quản trị viên", "Administrator"),
    "role_clinician": ("Bác sĩ lâm sàng", "Clinician"),
    "role_integration": ("Tích hợp", "Integration"),
    # common
    "results": ("Kết quả", "Results"),
    "specimen": ("Mã mẫu", "Specimen"),
    "patient": ("Bệnh nhân", "Patient"),
    "test": ("Xét nghiệm", "Test"),
    "value": ("Kết quả", "Value"),
    "unit": ("Đơn vị", "Unit"),
    "range": ("Khoảng tham chiếu", "Reference range"),
    "flags": ("Cờ", "Flags"),
    "status": ("Trạng thái", "Status"),
    "instrument": ("Máy xét nghiệm", "Instrument"),
    "received": ("Thời gian nhận", "Received"),
    "time": ("Thời gian", "Time"),
    "refresh": ("Làm mới", "Refresh"),
    "search": ("Tìm kiếm", "Search"),
    "save": ("Lưu", "Save"),
    "cancel": ("Hủy", "Cancel"),
    "close": ("Đóng", "Close"),
    "confirm": ("Xác nhận", "Confirm"),
    "all": ("Tất cả", "All"),
    "none": ("Không có", "None"),
    "no_results": ("Chưa có kết quả", "No results yet"),
    "no_data": ("Không có dữ liệu", "No data"),
    "date_from": ("Từ ngày", "From"),
    "date_to": ("Đến ngày", "To"),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
    "saved": ("Đã lưu", "Saved"),
    "error": ("Lỗi", "Error"),
    "reason": ("Lý do", "Reason"),
    "comment": ("Ghi chú", "Comment"),
    "details": ("Chi tiết", "Details"),
    "section": ("Chuyên khoa", "Section"),
    "priority": ("Ưu tiên", "Priority"),
    "stat": ("Cấp cứu", "STAT"),
    "routine": ("Thường quy", "Routine"),
    "name": ("Họ tên", "Name"),
    "sex": ("Giới tính", "Sex"),
    "sex_M": ("Nam", "Male"),
    "sex_F": ("Nữ", "Female"),
    "sex_U": ("Không rõ", "Unknown"),
    "birth_date": ("Ngày sinh", "Date of birth"),
    "national_id": ("Số CCCD", "Citizen ID (CCCD)"),
    "mrn": ("Mã bệnh nhân", "Hospital ID"),
    "insurance": ("Số thẻ BHYT", "Insurance card"),
    "page_of": ("Trang {page} / {pages} — {total} dòng", "Page {page} of {pages} — {total} rows"),
    "previous_page": ("Trang trước", "Previous page"),
    "next_page": ("Trang sau", "Next page"),
    # result states
    "st_received": ("Đã nhận", "Received"),
    "st_unmatched": ("Chưa ghép", "Unmatched"),
    "st_pending": ("Chờ duyệt", "Pending"),
    "st_autoverified": ("Tự động duyệt", "Autoverified"),
    "st_technically_validated": ("Đã duyệt kỹ thuật", "Technically validated"),
    "st_released": ("Đã trả kết quả", "Released"),
    "st_rerun_requested": ("Yêu cầu chạy lại", "Rerun requested"),
    "st_rejected": ("Đã loại bỏ", "Rejected"),
    "st_amended": ("Đã sửa đổi", "Amended"),
    # worklist
    "worklist": ("Danh sách duyệt kết quả", "Validation worklist"),
    "previous": ("Lần trước", "Previous"),
    "delta": ("Chênh lệch", "Delta"),
    "why_held": ("Lý do chờ duyệt", "Why it stopped"),
    "validate": ("Duyệt", "Validate"),
    "validate_selected": ("Duyệt các dòng đã chọn", "Validate selected"),
    "validate_normal": ("Duyệt tất cả kết quả bình thường", "Validate all normal"),
    "rerun": ("Chạy lại", "Rerun"),
    "reject": ("Loại bỏ", "Reject"),
    "amend": ("Sửa kết quả", "Amend"),
    "new_value": ("Giá trị mới", "New value"),
    "add_comment": ("Thêm ghi chú", "Add comment"),
    "validated_n": ("Đã duyệt {n} kết quả", "{n} result(s) validated"),
    "done": ("Đã thực hiện", "Done"),
    "conflict": ("Dữ liệu đã thay đổi", "Changed meanwhile"),
    "new_results": ("Có {n} kết quả mới", "{n} new result(s)"),
    "keyboard_help": ("Phím: ↑/↓ di chuyển · V duyệt · R chạy lại · C ghi chú",
                      "Keys: ↑/↓ move · V validate · R rerun · C comment"),
    "only_flagged": ("Chỉ kết quả bất thường", "Only flagged"),
    "stat_first": ("Cấp cứu lên đầu", "STAT first"),
    "workflow_missing": ("Dịch vụ duyệt kết quả chưa được cài đặt", "The result workflow service is not installed"),
    "flag_H": ("Cao", "High"),
    "flag_L": ("Thấp", "Low"),
    "flag_critical": ("Nguy hiểm", "Critical"),
    "flag_delta": ("Chênh lệch lớn so với lần trước", "Delta check"),
    "flag_qc": ("Bị giữ do QC", "QC hold"),
    "flag_instrument": ("Cờ từ máy", "Instrument flag"),
    "select_row": ("Chọn một dòng trước", "Select a row first"),
    # critical
    "critical_open": ("Giá trị nguy hiểm chưa thông báo", "Open critical values"),
    "record_notification": ("Ghi nhận thông báo", "Record notification"),
    "notified_person": ("Người nhận thông báo", "Person notified"),
    "notified_how": ("Hình thức", "How"),
    "read_back": ("Đã đọc lại xác nhận", "Read back confirmed"),
    "how_phone": ("Điện thoại", "Phone"),
    "how_in_person": ("Trực tiếp", "In person"),
    "how_sms": ("Tin nhắn SMS", "SMS"),
    "how_emr_message": ("Tin nhắn qua EMR", "EMR message"),
    "how_pager": ("Máy nhắn tin", "Pager"),
    "how_other": ("Khác", "Other"),
    "notified_at": ("Thời điểm thông báo", "Notified at"),
    "attempts_no_readback": ("Lần báo chưa đọc lại", "Attempts without read-back"),
    "notification_saved": ("Đã ghi nhận thông báo", "Notification recorded"),
    "no_critical": ("Không có giá trị nguy hiểm nào đang chờ", "No critical value is waiting"),
    # patients
    "patient_search_hint": ("Họ tên (không dấu cũng được), CCCD, mã bệnh nhân hoặc mã mẫu",
                            "Name (accents optional), CCCD, hospital ID or specimen barcode"),
    "cumulative": ("Kết quả tích lũy", "Cumulative results"),
    "trend": ("Biểu đồ xu hướng", "Trend"),
    "reports": ("Phiếu kết quả", "Reports"),
    "no_patient": ("Không tìm thấy bệnh nhân", "No patient found"),
    "select_patient": ("Chọn bệnh nhân để xem hồ sơ", "Select a patient to see the record"),
    # orders
    "new_order": ("Tạo chỉ định", "New order"),
    "tests_panels": ("Xét nghiệm / nhóm xét nghiệm", "Tests / panels"),
    "clinician": ("Bác sĩ chỉ định", "Ordering clinician"),
    "department": ("Khoa", "Department"),
    "create_order": ("Tạo chỉ định", "Create order"),
    "order_created": ("Đã tạo chỉ định {n}", "Order {n} created"),
    "reception": ("Nhận mẫu", "Specimen reception"),
    "scan_barcode": ("Quét mã vạch mẫu", "Scan specimen barcode"),
    "receive": ("Nhận mẫu", "Receive"),
    "specimen_received": ("Đã nhận mẫu {n}", "Specimen {n} received"),
    "recent_orders": ("Chỉ định gần đây", "Recent orders"),
    "order_no": ("Số phiếu", "Order no."),
    "label": ("In nhãn", "Label"),
    "clinical_info": ("Chẩn đoán / thông tin lâm sàng", "Clinical information"),
    # instruments
    "connection": ("Kết nối", "Connection"),
    "state": ("Trạng thái", "State"),
    "last_message": ("Tin nhắn cuối", "Last message"),
    "messages": ("Số tin nhắn", "Messages"),
    "backlog": ("Chờ lưu vào CSDL", "Waiting to be stored"),
    "errors": ("Lỗi", "Errors"),
    "raw_messages": ("Tin nhắn gốc", "Raw messages"),
    "quarantine": ("Cách ly", "Quarantine"),
    "unmatched_results": ("Kết quả chưa ghép mẫu", "Unmatched results"),
    "reprocess": ("Xử lý lại", "Reprocess"),
    "assign_specimen": ("Gán vào mẫu", "Assign to specimen"),
    "decoded": ("Dạng đọc", "Decoded"),
    "hex": ("Dạng hex", "Hex"),
    "size": ("Kích thước", "Size"),
    "reprocessed": ("Đã xử lý lại: {s}", "Reprocessed: {s}"),
    "assigned": ("Đã gán vào mẫu {n}", "Assigned to specimen {n}"),
    # outbox
    "outbox": ("Hàng đợi gửi EMR", "EMR outbox"),
    "destination": ("Nơi nhận", "Destination"),
    "queued": ("Đang chờ", "Queued"),
    "delivered": ("Đã gửi", "Delivered"),
    "dead": ("Gửi thất bại", "Dead-lettered"),
    "retry": ("Gửi lại", "Retry"),
    "attempts": ("Số lần thử", "Attempts"),
    "outbox_missing": ("Mô-đun gửi kết quả EMR chưa được cài đặt; chưa có tin nhắn nào",
                       "The EMR interface module is not installed yet; nothing is queued"),
    # admin
    "users": ("Người dùng", "Users"),
    "add_user": ("Thêm người dùng", "Add user"),
    "full_name": ("Họ tên đầy đủ", "Full name"),
    "active": ("Hoạt động", "Active"),
    "locked": ("Bị khóa", "Locked"),
    "unlock": ("Mở khóa", "Unlock"),
    "deactivate": ("Vô hiệu hóa", "Deactivate"),
    "activate": ("Kích hoạt", "Activate"),
    "catalogue": ("Danh mục xét nghiệm", "Test catalogue"),
    "code": ("Mã", "Code"),
    "loinc": ("LOINC", "LOINC"),
    "ranges": ("Khoảng tham chiếu", "Reference ranges"),
    "critical_limits": ("Giới hạn nguy hiểm", "Critical limits"),
    "instrument_config": ("Cấu hình máy", "Instrument configuration"),
    "code_maps": ("Ánh xạ mã xét nghiệm", "Test code maps"),
    "instrument_code": ("Mã trên máy", "Instrument code"),
    "profile": ("Hồ sơ máy", "Profile"),
    "protocol": ("Giao thức", "Protocol"),
    "user_created": ("Đã tạo người dùng {n}", "User {n} created"),
    # audit
    "audit": ("Nhật ký hệ thống", "Audit log"),
    "actor": ("Người thực hiện", "Actor"),
    "action": ("Thao tác", "Action"),
    "entity": ("Đối tượng", "Entity"),
    "verify_chain": ("Kiểm tra chuỗi băm", "Verify hash chain"),
    "chain_ok": ("Chuỗi nhật ký toàn vẹn: {n} sự kiện", "Audit chain intact: {n} events"),
    "chain_bad": ("Chuỗi nhật ký bị sửa đổi: {r}", "Audit chain broken: {r}"),
    # dashboard
    "today_workload": ("Khối lượng hôm nay", "Today's workload"),
    "orders_today": ("Chỉ định hôm nay", "Orders today"),
    "results_today": ("Kết quả hôm nay", "Results today"),
    "pending": ("Chờ duyệt", "Pending"),
    "released_today": ("Đã trả hôm nay", "Released today"),
    "unmatched": ("Chưa ghép", "Unmatched"),
    "quarantined": ("Tin nhắn lỗi", "Quarantined"),
    "tat": ("Thời gian trả kết quả (phút)", "Turnaround time (minutes)"),
    "median": ("Trung vị", "Median"),
    "p90": ("P90", "P90"),
    "by_section": ("Theo chuyên khoa", "By section"),
    "instrument_state": ("Tình trạng máy", "Instrument state"),
    "qc_state": ("Tình trạng QC", "QC state"),
    "tat_missing": ("Chưa có số liệu TAT", "No turnaround data yet"),
    # qc
    "qc_dashboard": ("Bảng nội kiểm", "QC dashboard"),
    "qc_missing": ("Dịch vụ QC chưa được cài đặt", "The QC service is not installed"),
    "lot": ("Lô", "Lot"),
    "level": ("Mức", "Level"),
    "mean": ("Trung bình", "Mean"),
    "sd": ("Độ lệch chuẩn", "SD"),
    "corrective_action": ("Hành động khắc phục", "Corrective action"),
    "analyte": ("Chất phân tích", "Analyte"),
    "violations": ("Vi phạm", "Violations"),
}


def t(key: str, lang: str, **values: object) -> str:
    vi, en = TEXTS.get(key, (key, key))
    text = vi if lang == "vi" else en
    return text.format(**values) if values else text


def fmt_datetime(value: datetime | str | None, lang: str, tz: str, *, seconds: bool = False) -> str:
    """A UTC timestamp in local time: 26/11/2026 14:05 (vi) or 2026-11-26 14:05 (en)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(ZoneInfo(tz))
    time_part = "%H:%M:%S" if seconds else "%H:%M"
    return local.strftime(("%d/%m/%Y " if lang == "vi" else "%Y-%m-%d ") + time_part)


def fmt_date(value: date | None, lang: str) -> str:
    if value is None:
        return ""
    return value.strftime("%d/%m/%Y" if lang == "vi" else "%Y-%m-%d")


def parse_date(text: str, lang: str) -> date | None:
    """Read a date typed as DD/MM/YYYY (vi) or YYYY-MM-DD (both); None when empty; ValueError when bad."""
    text = text.strip()
    if not text:
        return None
    for fmt in ("%d/%m/%Y", "%Y-%m-%d") if lang == "vi" else ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)

TEXTS.update({
    "qc_accepted": ("Chấp nhận", "Accepted"),
    "qc_warning": ("Cảnh báo", "Warning"),
    "qc_rejected": ("Loại bỏ", "Rejected"),
    "qc_held": ("Đang giữ", "Held"),
    "qc_no_qc": ("Chưa có QC", "No QC"),
    "qc_last_run": ("Lần chạy QC cuối", "Last QC run"),
    "qc_holds": ("Kết quả đang bị giữ do QC", "QC holds"),
    "hold_reason": ("Lý do giữ", "Hold reason"),
    "hold_since": ("Giữ từ", "Held since"),
    "hold_state": ("Tình trạng", "State"),
    "record_action": ("Ghi hành động khắc phục", "Record corrective action"),
    "action_recorded": ("Đã ghi hành động khắc phục; chờ lần chạy QC đạt", "Corrective action recorded; waiting "
                        "for an accepted QC run"),
    "manual_qc": ("Nhập QC thủ công", "Manual QC entry"),
    "material": ("Vật liệu kiểm tra", "Control material"),
    "levey_jennings": ("Biểu đồ Levey-Jennings", "Levey-Jennings chart"),
    "choose_pair": ("Chọn máy và chất phân tích", "Choose an instrument and analyte"),
    "lot_setup": ("Lô & giá trị đích", "Lots & targets"),
    "rule_sets": ("Bộ quy tắc Westgard", "Westgard rule sets"),
    "rejection_rules": ("Quy tắc loại bỏ", "Rejection rules"),
    "warning_rules": ("Quy tắc cảnh báo", "Warning rules"),
    "max_interval": ("Khoảng cách QC tối đa (giờ)", "Max QC interval (hours)"),
    "sigma_proposal": ("Đề xuất theo sigma", "Sigma proposal"),
    "tea": ("TEa (%)", "TEa (%)"),
    "bias": ("Độ chệch (%)", "Bias (%)"),
    "new_lot": ("Thêm lô", "Add lot"),
    "new_target": ("Thêm giá trị đích", "Add target"),
    "expires": ("Hạn dùng", "Expires"),
    "source": ("Nguồn", "Source"),
    "run": ("Lần chạy", "Run"),
    "decision": ("Kết luận", "Decision"),
})

TEXTS.update({
    # sections of the catalogue
    "sec_chemistry": ("Hóa sinh", "Chemistry"),
    "sec_haematology": ("Huyết học", "Haematology"),
    "sec_hematology": ("Huyết học", "Haematology"),
    "sec_coagulation": ("Đông máu", "Coagulation"),
    "sec_immunoassay": ("Miễn dịch", "Immunoassay"),
    "sec_immunology": ("Miễn dịch", "Immunology"),
    "sec_urinalysis": ("Nước tiểu", "Urinalysis"),
    "sec_microbiology": ("Vi sinh", "Microbiology"),
    "sec_calculated": ("Chỉ số tính toán", "Calculated"),
    # instrument link states
    "link_connected": ("Đã kết nối", "Connected"),
    "link_listening": ("Chờ kết nối", "Listening"),
    "link_connecting": ("Đang kết nối", "Connecting"),
    "link_disconnected": ("Mất kết nối", "Disconnected"),
    "link_error": ("Lỗi", "Error"),
    "link_stopped": ("Đã dừng", "Stopped"),
    # QC holds
    "hold_rejected_run": ("Lần chạy QC bị loại", "Rejected QC run"),
    "hold_no_qc_in_interval": ("Quá hạn chạy QC", "No QC in interval"),
    "hold_cannot_evaluate": ("QC không đánh giá được", "QC cannot be evaluated"),
    "hold_open": ("Đang giữ", "Open"),
    "hold_awaiting_run": ("Chờ lần chạy QC đạt", "Awaiting an accepted run"),
    "hold_lifted": ("Đã gỡ", "Lifted"),
    "by_status": ("Theo trạng thái", "By status"),
    "av_rules": ("Quy tắc tự động duyệt", "Autoverification rules"),
    "av_simulator": ("Mô phỏng tự động duyệt trên kết quả cũ", "Autoverification simulator (past results)"),
    "av_low": ("Giới hạn dưới", "Lower limit"),
    "av_high": ("Giới hạn trên", "Upper limit"),
    "simulate": ("Mô phỏng", "Simulate"),
    "av_simulated": ("{n} kết quả: {a} sẽ được tự động duyệt ({r}); {d} kết quả người duyệt không trả nhưng quy tắc "
                     "sẽ trả", "{n} results: {a} would be autoverified ({r}); {d} the rule would release that a "
                     "person did not"),
})


def tr(prefix: str, value: str, lang: str) -> str:
    """Translate a code (section, state…) when a text exists for it, else show the code itself."""
    key = f"{prefix}_{value}"
    return t(key, lang) if key in TEXTS else value
