"""LIS interpretation flags (L H LL HH A), plausibility, unit check and the delta check.

Kept apart from the instrument's own flags (``Result.abnormal_flags``, as sent): both are shown side by
side. Conventions: a value equal to a reference limit is normal (``low <= v <= high``); a value is
critical when strictly beyond a critical limit (``v < critical_low`` or ``v > critical_high``).
A censored value ("<0.01", ">1000") is flagged only when the whole censored interval lies beyond a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lis.services.workflow.ranges import RangeLimits


@dataclass(frozen=True, slots=True)
class Interpretation:
    flag: str  # "" | L | H | LL | HH | A
    critical: bool


def value_bounds(number: float, comparator: str) -> tuple[float, float]:
    """The interval a (possibly censored) value stands for; "<n" on a concentration means [0, n]."""
    if comparator in ("<", "<="):
        return (min(0.0, number), number)
    if comparator in (">", ">="):
        return (number, float("inf"))
    return (number, number)


def interpret(number: float | None, comparator: str, text: str, limits: RangeLimits | None) -> Interpretation:
    """Flag a value against its reference range (CLSI EP28 limits, critical "panic" limits per CLSI GP47)."""
    if limits is None:
        return Interpretation("", False)
    if number is None:
        if limits.text and text.strip() and text.strip().casefold() != limits.text.casefold():
            return Interpretation("A", False)
        return Interpretation("", False)
    lo, hi = value_bounds(number, comparator)
    if limits.critical_low is not None and hi < limits.critical_low:
        return Interpretation("LL", True)
    if limits.critical_high is not None and lo > limits.critical_high:
        return Interpretation("HH", True)
    if limits.low is not None and hi < limits.low:
        return Interpretation("L", False)
    if limits.high is not None and lo > limits.high:
        return Interpretation("H", False)
    return Interpretation("", False)


def plausible(number: float | None, comparator: str, validity_low: float | None,
              validity_high: float | None) -> bool:
    """Inside the test's validity limits (a value outside them is not credible: clot, wrong tube, dilution)."""
    if number is None:
        return True
    lo, hi = value_bounds(number, comparator)
    if validity_low is not None and hi < validity_low:
        return False
    return not (validity_high is not None and lo > validity_high)


_UNIT_ALIASES = {"µ": "u", "μ": "u", "^": "*", " ": ""}


def normalise_unit(unit: str) -> str:
    out = unit.strip()
    for old, new in _UNIT_ALIASES.items():
        out = out.replace(old, new)
    return out.casefold()


@lru_cache(maxsize=1024)
def unit_matches(sent: str, catalogue: str) -> bool:
    """The unit sent equals the catalogue unit (UCUM, case/µ/^ spelling ignored); no unit sent is accepted."""
    return not sent.strip() or not catalogue or normalise_unit(sent) == normalise_unit(catalogue)


@dataclass(frozen=True, slots=True)
class DeltaOutcome:
    previous_id: int
    change: float  # new - previous
    ok: bool
    detail: str


def delta_check(number: float, previous: float, previous_id: int, abs_limit: float | None,
                pct_limit: float | None) -> DeltaOutcome:
    """CLSI EP33 delta check: fails when any configured limit (absolute, percent of previous) is exceeded."""
    change = number - previous
    problems = []
    if abs_limit is not None and abs(change) > abs_limit:
        problems.append(f"change {change:+g} exceeds ±{abs_limit:g}")
    if pct_limit is not None:
        if previous == 0:
            if change != 0:
                problems.append(f"change {change:+g} from a previous 0 exceeds {pct_limit:g}%")
        else:
            pct = abs(change) / abs(previous) * 100
            if pct > pct_limit:
                problems.append(f"change {pct:.0f}% exceeds {pct_limit:g}%")
    detail = (f"previous {previous:g} (result {previous_id}): " + "; ".join(problems)) if problems else \
        f"previous {previous:g} (result {previous_id}), change {change:+g}"
    return DeltaOutcome(previous_id, change, not problems, detail)
