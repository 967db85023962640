"""UI texts in Vietnamese and English (every label goes through :func:`t`)."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {  # key: (vi, en)
    "username": ("Tên đăng nhập", "Username"),
    "password": ("Mật khẩu", "Password"),
    "login": ("Đăng nhập", "Log in"),
    "logout": ("Đăng xuất", "Log out"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu", "Wrong username or password"),
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
    "language": ("English", "Tiếng Việt"),
    "refresh": ("Làm mới", "Refresh"),
    "no_results": ("Chưa có kết quả", "No results yet"),
}


def t(key: str, lang: str) -> str:
    vi, en = TEXTS.get(key, (key, key))
    return vi if lang == "vi" else en
