"""Helpers for the QC engine tests: build series from z values and run both engines on them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
import pytest

from qc.model import QcObservation, RuleSet, Scope
from qc.rules import evaluate_runs
from qc.vectorized import DECISION_NAMES, evaluate_frame

# One run: material -> z, or material -> (z, lot).  Values are 100 + 10·z, exactly (Decimal arithmetic).
RunSpec = dict[str, object]


def make_obs(runs: Sequence[RunSpec], mean: str = "100", sd: str = "10") -> list[QcObservation]:
    out: list[QcObservation] = []
    for i, run in enumerate(runs, start=1):
        for material, spec in run.items():
            z, lot = spec if isinstance(spec, tuple) else (spec, "A")
            value = Decimal(mean) + Decimal(sd) * Decimal(str(z))
            out.append(QcObservation(f"r{i}", material, str(lot), value, Decimal(mean), Decimal(sd)))
    return out


def to_frame(obs: Sequence[QcObservation]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "analyte": [q.analyte for q in obs],
            "run": [q.run for q in obs],
            "material": [q.material for q in obs],
            "lot": [q.lot for q in obs],
            "value": [float(q.value) for q in obs],
            "mean": [float(q.mean) for q in obs],
            "sd": [float(q.sd) for q in obs],
        }
    )


@dataclass(frozen=True)
class Outcome:
    run: str
    decision: str
    names: list[str]
    scoped: set[tuple[str, Scope]]


def run_reference(obs: Sequence[QcObservation], rules: RuleSet) -> list[Outcome]:
    return [
        Outcome(d.run, d.decision.value, d.rule_names, {(v.rule, v.scope) for v in d.violations})
        for d in evaluate_runs(obs, rules)
    ]


def run_vectorized(obs: Sequence[QcObservation], rules: RuleSet) -> list[Outcome]:
    res = evaluate_frame(to_frame(obs), rules)
    names = res.violations()
    return [
        Outcome(
            str(res.run[i]),
            DECISION_NAMES[int(res.decision[i])],
            names[i],
            {k for k, arr in res.fired.items() if arr[i]},
        )
        for i in range(len(res))
    ]


Engine = Callable[[Sequence[RunSpec], RuleSet], list[Outcome]]


@pytest.fixture(params=["reference", "vectorized"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Evaluate z-value run specs with the run-by-run engine or the numpy engine (same semantics)."""
    fn = run_reference if request.param == "reference" else run_vectorized

    def evaluate(runs: Sequence[RunSpec], rules: RuleSet) -> list[Outcome]:
        return fn(make_obs(runs), rules)

    return evaluate


@pytest.fixture
def series() -> Callable[..., list[QcObservation]]:
    """make_obs: z-value run specs -> observations."""
    return make_obs


@pytest.fixture
def engines() -> tuple[Callable[..., list[Outcome]], Callable[..., list[Outcome]]]:
    """(reference, vectorized) evaluators taking observations and a rule set."""
    return run_reference, run_vectorized


@pytest.fixture
def frame_of() -> Callable[[Sequence[QcObservation]], pd.DataFrame]:
    return to_frame
