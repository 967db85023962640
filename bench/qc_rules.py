"""Benchmark of the Westgard QC engine (qc/).

1,000,000 observations (1,000 analytes x 2 levels x 500 runs) through the full rule set with the vectorised
engine (:func:`qc.vectorized.evaluate_frame`, float fast path + exact Decimal recheck near the limits);
westgard-python on a subset of the same data, per observation, and the ratio; one new run of one analyte
through the incremental API (:func:`qc.rules.evaluate_new_run`).  Targets: < 1 s, >= 50x, < 1 ms.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from qc.model import RULE_SPECS, QcObservation, RuleSet
from qc.rules import evaluate_new_run, history_from_runs
from qc.vectorized import evaluate_frame

N_ANALYTES = 1_000
N_LEVELS = 2
N_RUNS = 500
FULL_RULES = RuleSet.from_names(list(RULE_SPECS), ["1_2s", "7_T"])
WG_RULES = ("1_3s", "2_2s", "R_4s", "4_1s", "10_x")


def make_frame(n_analytes: int, n_runs: int, seed: int = 42) -> pd.DataFrame:
    """Long-format QC data; values rounded to 0.01 so that some land exactly on a limit."""
    rng = np.random.default_rng(seed)
    n = n_analytes * n_runs * N_LEVELS
    analyte = np.repeat(np.arange(n_analytes), n_runs * N_LEVELS)
    run = np.tile(np.repeat(np.arange(n_runs), N_LEVELS), n_analytes)
    material = np.tile(np.arange(N_LEVELS), n_analytes * n_runs)
    mean = np.where(material == 0, 100.0, 250.0)
    sd = np.where(material == 0, 2.5, 5.0)
    shift = np.where(rng.random(n) < 0.02, 1.5, 0.0)
    value = np.round(mean + sd * (rng.standard_normal(n) + shift), 2)
    return pd.DataFrame(
        {
            "analyte": analyte,
            "run": run,
            "material": material,
            "lot": 1,
            "value": value,
            "mean": mean,
            "sd": sd,
        }
    )


def time_vectorised(frame: pd.DataFrame, rules: RuleSet) -> tuple[float, np.ndarray]:
    best = float("inf")
    decision = np.array([])
    for _ in range(3):
        t0 = time.perf_counter()
        result = evaluate_frame(frame, rules)
        best = min(best, time.perf_counter() - t0)
        decision = result.decision
    return best, decision


def time_westgard(frame: pd.DataFrame) -> float:
    """westgard-python, event by event per analyte (its evaluate_custom_rule_sequence)."""
    import westgard as wg

    rule_set = wg.custom_rule_set_from_rules(rules=tuple(wg.RuleName(r) for r in WG_RULES))
    rows = [
        {
            "analyte": str(a),
            "material": str(m),
            "run_id": f"{a}-{r}",
            "sequence": i,
            "value": v,
            "mean": mu,
            "standard_deviation": s,
        }
        for i, (a, r, m, v, mu, s) in enumerate(
            frame[["analyte", "run", "material", "value", "mean", "sd"]].itertuples(index=False)
        )
    ]
    t0 = time.perf_counter()
    for series in wg.series_from_rows(rows).values():
        wg.evaluate_custom_rule_sequence(series=series, rule_set=rule_set)
    return time.perf_counter() - t0


def time_incremental() -> float:
    """Median time of evaluate_new_run for one run (2 levels) of one analyte with a 60-run history."""
    rng = np.random.default_rng(7)
    past = [
        [
            QcObservation(
                f"r{r}", f"L{lv}", "lot1", round(100 + 2.5 * float(rng.standard_normal()), 2), 100, 2.5
            )
            for lv in (1, 2)
        ]
        for r in range(60)
    ]
    history = history_from_runs(past, FULL_RULES)
    new_run = [
        QcObservation("new", "L1", "lot1", 101.37, 100, 2.5),
        QcObservation("new", "L2", "lot1", 98.2, 100, 2.5),
    ]
    times = []
    for _ in range(2000):
        t0 = time.perf_counter()
        evaluate_new_run(history, new_run, FULL_RULES)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    frame = make_frame(N_ANALYTES, N_RUNS)
    n = len(frame)
    t_full, decision = time_vectorised(frame, FULL_RULES)
    counts = np.bincount(decision, minlength=3)
    print(
        f"qc.vectorized full rule set ({len(FULL_RULES.active)} rules): {n:,} observations in {t_full:.3f} s "
        f"({n / t_full / 1e6:.2f} M obs/s; target < 1 s)"
    )
    print(f"  runs: {len(decision):,}  accept {counts[0]:,}  warning {counts[1]:,}  reject {counts[2]:,}")

    default_rules = RuleSet.from_names(WG_RULES, [], reset_on_reject=False)
    t_ours, _ = time_vectorised(frame, default_rules)
    subset = make_frame(20, 100, seed=1)
    t_wg = time_westgard(subset)
    ours_per_obs = t_ours / n
    wg_per_obs = t_wg / len(subset)
    print(
        f"rule set {','.join(WG_RULES)}: qc.vectorized {ours_per_obs * 1e9:.0f} ns/obs on {n:,} obs; "
        f"westgard-python {wg_per_obs * 1e6:.1f} us/obs on {len(subset):,} obs (20 analytes x 100 runs)"
    )
    print(
        "  ratio westgard-python / qc.vectorized per observation: "
        f"{wg_per_obs / ours_per_obs:,.0f}x (target >= 50x)"
    )

    t_inc = time_incremental()
    print(
        f"incremental evaluate_new_run, one run (2 levels) of one analyte, full rule set: "
        f"{t_inc * 1e6:.0f} us (target < 1 ms)"
    )


if __name__ == "__main__":
    main()
