"""QC statistics: n, mean, SD, CV, cumulative statistics versus the target, and establishing a lab target.

Computed in ``decimal.Decimal`` (sums exact; SD to 28 significant digits) so that a target established here
feeds the exact Westgard limits of :mod:`qc.exact` without a float round trip.  SD is the sample SD (n − 1).
Project decision: a lab target mean/SD is established from the first N runs of a new lot (default 20).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from qc.exact import to_decimal
from qc.model import Number, QcInputError

DEFAULT_TARGET_RUNS = 20


@dataclass(frozen=True, slots=True)
class Summary:
    """n, mean, sample SD and CV (%) of a set of control values; SD/CV are None for n < 2."""

    n: int
    mean: Decimal
    sd: Decimal | None
    cv_pct: Decimal | None


@dataclass(frozen=True, slots=True)
class TargetComparison:
    """Observed statistics against the target: bias (value and %), SD ratio and z of the observed mean."""

    observed: Summary
    target_mean: Decimal
    target_sd: Decimal
    bias: Decimal
    bias_pct: Decimal
    sd_ratio: Decimal | None
    mean_z: Decimal


@dataclass(frozen=True, slots=True)
class Target:
    """A target mean and SD for one control material and lot."""

    mean: Decimal
    sd: Decimal
    n: int


def _decimals(values: Iterable[Number]) -> list[Decimal]:
    return [to_decimal(v, what=f"value {i}") for i, v in enumerate(values)]


def summarize(values: Iterable[Number]) -> Summary:
    """n, mean, SD (n − 1) and CV % of the values."""
    xs = _decimals(values)
    if not xs:
        raise QcInputError("no values to summarise")
    mean = statistics.mean(xs)
    if len(xs) < 2:
        return Summary(len(xs), mean, None, None)
    sd = statistics.stdev(xs, mean)
    cv = sd / abs(mean) * 100 if mean != 0 else None
    return Summary(len(xs), mean, sd, cv)


def cumulative(values: Sequence[Number]) -> list[Summary]:
    """Cumulative statistics after each value (for a cumulative mean/SD chart)."""
    xs = _decimals(values)
    return [summarize(xs[: i + 1]) for i in range(len(xs))]


def compare_to_target(values: Iterable[Number], target_mean: Number, target_sd: Number) -> TargetComparison:
    """Cumulative (all values) statistics versus the target mean and SD."""
    observed = summarize(values)
    tm = to_decimal(target_mean, what="target mean")
    ts = to_decimal(target_sd, what="target SD")
    if ts <= 0:
        raise QcInputError(f"target SD must be > 0, got {target_sd!r}")
    if tm == 0:
        raise QcInputError("target mean is 0: bias % is undefined")
    bias = observed.mean - tm
    return TargetComparison(
        observed=observed,
        target_mean=tm,
        target_sd=ts,
        bias=bias,
        bias_pct=bias / abs(tm) * 100,
        sd_ratio=observed.sd / ts if observed.sd is not None else None,
        mean_z=bias / ts,
    )


def establish_target(values: Sequence[Number], n_runs: int = DEFAULT_TARGET_RUNS) -> Target:
    """Lab target mean/SD from the first ``n_runs`` values of a material and lot (one value per run).

    Raises :class:`QcInputError` when fewer values are available, or when they have no spread (SD 0).
    """
    if n_runs < 2:
        raise QcInputError("a target needs at least 2 runs")
    if len(values) < n_runs:
        raise QcInputError(f"a target needs {n_runs} runs, only {len(values)} available")
    s = summarize(values[:n_runs])
    if s.sd is None or s.sd == 0:
        raise QcInputError("the first runs have no spread (SD 0); cannot set a target SD")
    return Target(s.mean, s.sd, n_runs)
