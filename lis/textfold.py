"""Vietnamese text folding: "Nông Thị Hoa" → "Nong Thi Hoa" (search keys, analysers without UTF-8)."""

from __future__ import annotations

import unicodedata

_SPECIAL = str.maketrans({"đ": "d", "Đ": "D", "ơ": "o", "Ơ": "O", "ư": "u", "Ư": "U"})


def fold_ascii(text: str) -> str:
    """Strip diacritics (NFD, drop combining marks) and map đ/Đ, keeping everything else."""
    decomposed = unicodedata.normalize("NFD", text.translate(_SPECIAL))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_SPECIAL)


def search_key(text: str) -> str:
    """Lower-case folded text with single spaces, for accent-insensitive search."""
    return " ".join(fold_ascii(text).lower().split())
