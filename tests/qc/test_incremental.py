"""Incremental API: evaluate_new_run on each arriving run equals the batch result, with details and speed."""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

import pytest

from qc.model import Decision, QcInputError, QcObservation, RuleSet, Scope, Severity
from qc.rules import QcHistory, evaluate_new_run, evaluate_runs, history_from_runs

RULES = RuleSet.from_names()


def run(run_id: str, l1: str, l2: str, lot: str = "A") -> list[QcObservation]:
    return [
        QcObservation(run_id, "L1", lot, Decimal(l1), Decimal(100), Decimal(10), obs_id=f"{run_id}-L1"),
        QcObservation(run_id, "L2", lot, Decimal(l2), Decimal(200), Decimal(20), obs_id=f"{run_id}-L2"),
    ]


def test_incremental_equals_batch():
    runs = [run(f"r{i}", str(100 + (i % 7) * 4 - 10), str(200 + (i % 5) * 9 - 18)) for i in range(40)]
    runs[10] = run("r10", "135", "200")
    runs[20] = run("r20", "122", "245")
    history = QcHistory()
    incremental = []
    for r in runs:
        decision, history = evaluate_new_run(history, r, RULES)
        incremental.append(decision)
    batch = evaluate_runs([q for r in runs for q in r], RULES)
    assert incremental == batch
    assert incremental[10].decision is Decision.REJECT
    assert incremental[20].decision is Decision.REJECT


def test_violation_details_name_rule_scope_and_observations():
    history = QcHistory()
    d1, history = evaluate_new_run(history, run("r1", "125", "200"), RULES)
    assert d1.decision is Decision.WARNING
    assert [(v.rule, v.scope, v.severity, v.observations) for v in d1.violations] == [
        ("1_2s", Scope.WITHIN_RUN, Severity.WARNING, ("r1-L1",))
    ]
    d2, history = evaluate_new_run(history, run("r2", "121", "200"), RULES)
    assert d2.decision is Decision.REJECT
    two_two = [v for v in d2.violations if v.rule == "2_2s"]
    assert [(v.scope, v.material, v.observations) for v in two_two] == [
        (Scope.WITHIN_MATERIAL, "L1", ("r1-L1", "r2-L1"))
    ]
    d3, _ = evaluate_new_run(history, run("r3", "111", "221"), RULES)
    # history was reset after the rejected r2: no 2_2s/4_1s reaching back
    assert d3.decision is Decision.ACCEPT
    d4, _ = evaluate_new_run(history, run("r4", "122", "159"), RULES)
    r4s = [v for v in d4.violations if v.rule == "R_4s"]
    assert [(v.scope, v.observations) for v in r4s] == [(Scope.WITHIN_RUN, ("r4-L1", "r4-L2"))]


def test_history_is_not_modified_and_can_be_rebuilt():
    past = [run(f"r{i}", "105", "210") for i in range(4)]
    history = history_from_runs(past, RULES)
    before = history
    d, after = evaluate_new_run(history, run("r4", "105", "210"), RULES)
    assert d.rule_names == ["10_x"]
    assert history is before and len(history.runs) == 4  # 10_x: 5 runs x 2 levels
    assert after.runs == ()  # rejected: the across-run history restarts


def test_observation_ids_default_to_positions():
    obs = [
        QcObservation("r1", "L1", "A", "125", "100", "10"),
        QcObservation("r1", "L2", "A", "100", "100", "10"),
    ]
    d, h = evaluate_new_run(QcHistory(), obs, RULES)
    assert d.violations[0].observations == (0,)
    d, _ = evaluate_new_run(
        h,
        [
            QcObservation("r2", "L1", "A", "100", "100", "10"),
            QcObservation("r2", "L2", "A", "75", "100", "10"),
        ],
        RULES,
    )
    assert d.violations[0].observations == (3,)


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        ([], "at least one observation"),
        ([QcObservation("r1", "L1", "A", "1", "1", "0")], "SD must be > 0"),
        ([QcObservation("r1", "L1", "A", "<0.1", "1", "1")], "is not a number"),
        (
            [QcObservation("r1", "L1", "A", "1", "1", "1"), QcObservation("r2", "L2", "A", "1", "1", "1")],
            "share run id",
        ),
    ],
)
def test_bad_runs_raise(obs, message):
    with pytest.raises(QcInputError, match=message):
        evaluate_new_run(QcHistory(), obs, RULES)


def test_batch_rejects_runs_out_of_order():
    obs = run("r1", "100", "200") + run("r2", "100", "200") + run("r1", "100", "200")
    with pytest.raises(QcInputError, match="observation 4: run 'r1' reappears"):
        evaluate_runs(obs, RULES)


def test_one_new_run_costs_under_a_millisecond():
    all_rules = RuleSet.from_names(
        [
            "1_2s",
            "1_3s",
            "2_2s",
            "R_4s",
            "4_1s",
            "8_x",
            "10_x",
            "12_x",
            "2of3_2s",
            "3_1s",
            "6_x",
            "9_x",
            "7_T",
        ],
        ["1_2s", "7_T"],
    )
    past = [run(f"r{i}", str(100 + (i % 7) - 3), str(200 + (i % 5) - 2)) for i in range(50)]
    history = history_from_runs(past, all_rules)
    new = run("new", "101.3", "198.7")
    times = []
    for _ in range(300):
        t0 = time.perf_counter()
        evaluate_new_run(history, new, all_rules)
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 1e-3


def test_evaluate_runs_accepts_a_dataframe_with_analytes():
    import pandas as pd

    df = pd.DataFrame(
        {
            "analyte": ["GLU", "GLU", "CREA", "GLU", "GLU"],
            "run": ["a", "a", "a", "b", "b"],
            "material": ["L1", "L2", "L1", "L1", "L2"],
            "lot": ["x"] * 5,
            "value": [102.2, 97.79, 5.0, 103.0, 102.5],
            "mean": [100.0, 100.0, 5.0, 100.0, 100.0],
            "sd": [1.1, 1.1, 0.2, 1.1, 1.1],
        }
    )
    out = evaluate_runs(df, RULES)
    assert [(d.analyte, d.run, d.decision.value, d.rule_names) for d in out] == [
        ("GLU", "a", "warning", ["1_2s"]),  # 102.2 is exactly +2 SD; 97.79 is beyond -2 SD
        ("CREA", "a", "accept", []),
        ("GLU", "b", "reject", ["1_2s", "2_2s"]),
    ]
    assert out[0].violations[0].observations == (1,)
    assert out[2].violations[1].observations == (3, 4)


def test_vectorized_rejects_missing_run_ids():
    import pandas as pd

    from qc.vectorized import evaluate_frame

    df = pd.DataFrame(
        {"run": ["a", None], "material": ["L1", "L1"], "lot": "x", "value": 1.0, "mean": 1.0, "sd": 1.0}
    )
    with pytest.raises(QcInputError, match="observation 1: missing run id"):
        evaluate_frame(df, RULES)


def test_history_of_another_analyte_is_refused():
    _, history = evaluate_new_run(
        QcHistory(), [QcObservation("r1", "L1", "A", 1, 1, 1, analyte="GLU")], RULES
    )
    with pytest.raises(QcInputError, match="history is for analyte 'GLU'"):
        evaluate_new_run(history, [QcObservation("r2", "L1", "A", 1, 1, 1, analyte="NA")], RULES)
    with pytest.raises(QcInputError, match="already evaluated"):
        evaluate_new_run(history, [QcObservation("r1", "L1", "A", 1, 1, 1, analyte="GLU")], RULES)
