"""HL7 v2 character sets (MSH-18, HL7 table 0211) mapped to Python codecs.

HL7 v2.5.1 2.15.9.18: MSH-18 names the character set of the whole message; when it repeats, the first
repetition is the default set and the others are used through escape sequences (\\C..\\ / \\M..\\), which this
driver does not switch (they are dropped with a warning by the parser). An empty MSH-18 means ASCII in the
standard; analysers leave it empty and send their own code page, so the caller's per-instrument encoding is
used instead.
"""

from __future__ import annotations

import codecs

# HL7 table 0211 values (upper case, spaces normalised) -> Python codec.
_TABLE_0211: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "ISO IR192": "utf-8",
    "UNICODE": "utf-8",  # deprecated: "ISO/IEC 10646"; Mindray and others send UTF-8 under this name
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "KS X 1001": "euc-kr",
    "CNS 11643-1992": "big5",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "ISO IR14": "shift_jis",
}
for _n in range(1, 16):
    if _n != 12:
        _TABLE_0211[f"8859/{_n}"] = f"iso8859-{_n}"


def codec_for_charset(msh18: str) -> str | None:
    """The Python codec for an MSH-18 value, or None when empty or unknown.

    Also accepts a Python codec name (``cp1258``, ``windows-1252``) since some analysers put one there.
    """
    key = " ".join(msh18.strip().upper().replace("_", " ").split())
    if not key:
        return None
    if key in _TABLE_0211:
        return _TABLE_0211[key]
    try:
        return codecs.lookup(msh18.strip()).name
    except LookupError:
        return None


def charset_for_codec(codec: str) -> str:
    """The MSH-18 value (table 0211) for a Python codec, used when the LIS writes a message."""
    name = codecs.lookup(codec).name
    return {
        "ascii": "ASCII",
        "utf-8": "UNICODE UTF-8",
        "iso8859-1": "8859/1",
        "latin-1": "8859/1",
    }.get(name, "UNICODE UTF-8")
