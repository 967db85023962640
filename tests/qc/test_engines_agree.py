"""Property test: the numpy engine (qc.vectorized) decides exactly like the run-by-run engine (qc.rules).

Random series with 1-3 materials, missing levels, duplicate levels in a run, lot changes, values exactly on
the limits and on the mean, float values, random rule subsets, with and without reset after reject.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qc.model import RULE_SPECS, QcObservation, RuleSet

Z_EXACT = [Decimal(x) / 2 for x in range(-8, 9)]  # -4 .. 4 by 0.5: many exact boundaries


@st.composite
def series(draw: st.DrawFn) -> list[QcObservation]:
    n_mat = draw(st.integers(1, 3))
    materials = [f"L{i}" for i in range(1, n_mat + 1)]
    lots = dict.fromkeys(materials, 0)
    n_analytes = draw(st.integers(1, 2))
    obs: list[QcObservation] = []
    for a in range(n_analytes):
        for r in range(draw(st.integers(1, 25))):
            present = draw(st.lists(st.sampled_from(materials), min_size=1, max_size=n_mat + 1))
            for m in present:
                if draw(st.integers(0, 30)) == 0:
                    lots[m] += 1
                if draw(st.booleans()):
                    z = draw(st.sampled_from(Z_EXACT))
                    value: Decimal | float = Decimal(100) + Decimal("2.5") * z
                else:
                    value = (
                        draw(st.floats(90, 110, allow_nan=False))
                        if draw(st.booleans())
                        else round(draw(st.floats(90, 110)), 1)
                    )
                obs.append(
                    QcObservation(
                        f"r{r}", m, f"lot{lots[m]}", value, Decimal(100), Decimal("2.5"), analyte=f"A{a}"
                    )
                )
    return obs


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    names = draw(st.lists(st.sampled_from(list(RULE_SPECS)), min_size=1, unique=True))
    warn = draw(st.lists(st.sampled_from(names), unique=True))
    return RuleSet.from_names(names, warn, reset_on_reject=draw(st.booleans()))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(obs=series(), rules=rule_sets())
def test_vectorized_matches_reference(engines, obs, rules):
    reference, vectorized = engines
    ref = reference(obs, rules)
    vec = vectorized(obs, rules)
    assert [(o.run, o.decision, o.names, o.scoped) for o in vec] == [
        (o.run, o.decision, o.names, o.scoped) for o in ref
    ]
