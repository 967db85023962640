"""Exact z-score arithmetic for Westgard limits.

Project decision: z = (value − mean) / SD is computed exactly, and "beyond k s" is strict (|z| > k), so a
value exactly at mean + 2 SD is not a 1_2s.  Comparisons are done in ``decimal.Decimal`` with a context of
200 digits, in which subtraction and multiplication of the inputs are exact (no rounding): ``|v − m| > k·sd``
instead of dividing.  Floats are read as the decimal they print as (``repr``): 102.2 is 102.2, so
``100.0 + 2 * 1.1`` (which prints 102.2) is exactly at +2 SD, not beyond it.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal, InvalidOperation
from fractions import Fraction

from qc.model import Number, QcInputError

_CTX = Context(prec=200)


def to_decimal(x: Number, *, what: str = "value") -> Decimal:
    """Exact decimal for a number; floats via ``repr`` (the shortest decimal that round-trips)."""
    if isinstance(x, Decimal):
        d = x
    elif isinstance(x, bool):
        raise QcInputError(f"{what} {x!r} is not a number")
    elif isinstance(x, int):
        d = Decimal(x)
    elif isinstance(x, float):
        if not math.isfinite(x):
            raise QcInputError(f"{what} {x!r} is not a finite number")
        d = Decimal(repr(x))
    elif isinstance(x, str):
        try:
            d = Decimal(x.strip())
        except InvalidOperation:
            raise QcInputError(f"{what} {x!r} is not a number") from None
    else:
        raise QcInputError(f"{what} {x!r} is not a number")
    if not d.is_finite():
        raise QcInputError(f"{what} {x!r} is not a finite number")
    return d


def band(value: Decimal, mean: Decimal, sd: Decimal) -> int:
    """Signed z band: 0 on the mean, ±1 within 1 SD, ±2 beyond 1 SD, ±3 beyond 2 SD, ±4 beyond 3 SD.

    "Beyond" is strict: a value exactly at mean + 2 SD has band +2, not +3.
    """
    d = _CTX.subtract(value, mean)
    if d == 0:
        return 0
    a = abs(d)
    level = 1
    for k in (1, 2, 3):
        if a > _CTX.multiply(sd, k):
            level = k + 1
        else:
            break
    return level if d > 0 else -level


def z_fraction(value: Decimal, mean: Decimal, sd: Decimal) -> Fraction:
    """Exact z as a rational number (used for the 7_T trend comparisons)."""
    return Fraction(_CTX.subtract(value, mean)) / Fraction(sd)


def compare_z(v1: Decimal, m1: Decimal, s1: Decimal, v2: Decimal, m2: Decimal, s2: Decimal) -> int:
    """Sign of z2 − z1, exactly (cross-multiplied, SDs are positive)."""
    left = _CTX.multiply(_CTX.subtract(v2, m2), s1)
    right = _CTX.multiply(_CTX.subtract(v1, m1), s2)
    return (left > right) - (left < right)
