"""Reading result values as analysers write them: decimal comma, censored values, flags text."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"^\s*([<>]=?|=)?\s*([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class ParsedValue:
    """A value's number (None when not numeric) and its censoring comparator ("<", ">", "<=", ">=", "")."""

    number: float | None
    comparator: str = ""

    @property
    def is_censored(self) -> bool:
        return self.comparator in ("<", ">", "<=", ">=")


def parse_value(text: str) -> ParsedValue:
    """Parse "7,41", "12.5", "<0.01", ">1000", "1.2E+3"; anything else (e.g. "Positive", "----") → None."""
    match = _NUMBER.match(text)
    if not match:
        return ParsedValue(None)
    comparator, digits = match.group(1) or "", match.group(2).replace(",", ".")
    try:
        number = float(digits)
    except ValueError:
        return ParsedValue(None)
    if not math.isfinite(number):
        return ParsedValue(None)
    return ParsedValue(number, "" if comparator == "=" else comparator)


def numeric_or_none(text: str) -> float | None:
    """The number of an uncensored numeric value, else None (censored values are not plain numbers)."""
    parsed = parse_value(text)
    return None if parsed.is_censored else parsed.number
