"""Hand-written Westgard vectors, each checked with both engines (run-by-run and numpy).

Values are 100 + 10·z (exact decimals), two materials L1/L2 unless the test says otherwise.
"""

from __future__ import annotations

import pytest

from qc.model import QcInputError, RuleSet, Scope

ALL = RuleSet.from_names(
    ["1_2s", "1_3s", "2_2s", "R_4s", "4_1s", "8_x", "10_x", "12_x", "2of3_2s", "3_1s", "6_x", "9_x", "7_T"],
    [],
)
DEFAULT = RuleSet.from_names()
WM = Scope.WITHIN_MATERIAL
AM = Scope.ACROSS_MATERIALS
WR = Scope.WITHIN_RUN


def only(*names: str, warn: tuple[str, ...] = (), reset: bool = True) -> RuleSet:
    return RuleSet.from_names(names, warn, reset_on_reject=reset)


def quiet(n: int, z: float = 0.5) -> list[dict[str, object]]:
    """n runs that fire nothing alone: L1 and L2 on opposite sides, within 1 SD."""
    return [{"L1": z, "L2": -z} for _ in range(n)]


# ---------------------------------------------------------------- 1_2s / 1_3s: strict limits


@pytest.mark.parametrize(
    ("z", "fires"), [(2, False), (-2, False), ("2.0001", True), ("-2.0001", True), (3, True)]
)
def test_1_2s_is_strict(engine, z, fires):
    out = engine([{"L1": z, "L2": 0}], only("1_2s"))
    assert out[0].names == (["1_2s"] if fires else [])
    assert out[0].decision == ("reject" if fires else "accept")


@pytest.mark.parametrize(("z", "fires"), [(3, False), (-3, False), ("3.0000001", True), ("-3.5", True)])
def test_1_3s_is_strict(engine, z, fires):
    out = engine([{"L1": z, "L2": 0}], DEFAULT)
    assert ("1_3s" in out[0].names) is fires
    assert out[0].decision == ("reject" if fires else "warning")  # 1_2s warns in both cases


def test_float_representation_does_not_flip_the_2s_limit(engines, series, frame_of):
    from qc.model import QcObservation
    from qc.rules import evaluate_runs
    from qc.vectorized import evaluate_frame

    at_limit = [
        QcObservation("r1", "L1", "A", 102.2, 100.0, 1.1),  # 102.2 - 100 == 2 * 1.1 exactly in decimal
        QcObservation("r1", "L2", "A", 100.0 + 2 * 1.1, 100.0, 1.1),  # the float prints as 102.2
        QcObservation("r2", "L1", "A", 0.3, 0.1, 0.1),  # float z is 1.9999999999999998, exact z is 2
        QcObservation("r2", "L2", "A", 97.8, 100.0, 1.1),  # float z is -2.000000000000002
    ]
    assert 102.2 - 100.0 > 2 * 1.1  # the naive float comparison would flip it
    assert [d.decision.value for d in evaluate_runs(at_limit, only("1_2s"))] == ["accept", "accept"]
    assert list(evaluate_frame(frame_of(at_limit), only("1_2s")).decision) == [0, 0]
    beyond = [QcObservation("r1", "L1", "A", 102.2000000001, 100.0, 1.1)]
    assert evaluate_runs(beyond, only("1_2s"))[0].rule_names == ["1_2s"]
    assert evaluate_frame(frame_of(beyond), only("1_2s")).violations() == [["1_2s"]]


# ---------------------------------------------------------------- 2_2s


def test_2_2s_within_run_across_materials(engine):
    out = engine([{"L1": 2.5, "L2": 2.1}], only("2_2s"))
    assert out[0].scoped == {("2_2s", AM)}
    assert out[0].decision == "reject"


def test_2_2s_across_runs_within_material(engine):
    out = engine(
        [{"L1": 2.5, "L2": 0}, {"L1": -0.5, "L2": 0}, {"L1": "-2.1", "L2": 0.5}, {"L1": -2.2, "L2": 0}],
        only("2_2s"),
    )
    assert [o.names for o in out] == [[], [], [], ["2_2s"]]
    assert out[3].scoped == {("2_2s", WM)}


@pytest.mark.parametrize(
    "runs",
    [
        [{"L1": 2.5, "L2": -2.1}],  # mixed sides in one run (that is R_4s, not 2_2s)
        [{"L1": 2.5, "L2": 0}, {"L1": -2.5, "L2": 0}],  # mixed sides across runs
        [{"L1": 2.5, "L2": 0}, {"L1": 2, "L2": 0}],  # second one exactly at +2 SD
        [{"L1": 2.5, "L2": 2}],  # exactly at the limit within the run
    ],
)
def test_2_2s_does_not_fire(engine, runs):
    assert all("2_2s" not in o.names for o in engine(runs, only("2_2s")))


# ---------------------------------------------------------------- R_4s


def test_r_4s_within_run(engine):
    out = engine([{"L1": 2.1, "L2": -2.1}], only("R_4s"))
    assert out[0].scoped == {("R_4s", WR)}


def test_r_4s_never_across_runs(engine):
    out = engine(
        [{"L1": 2.5, "L2": 0}, {"L1": 0, "L2": -2.5}, {"L1": -2.5, "L2": 0}],
        only("R_4s", "1_2s", warn=("1_2s",)),
    )
    assert [o.names for o in out] == [["1_2s"], ["1_2s"], ["1_2s"]]
    assert [o.decision for o in out] == ["warning"] * 3


def test_r_4s_needs_both_strictly_beyond(engine):
    assert engine([{"L1": 2.1, "L2": -2}], only("R_4s"))[0].names == []


# ---------------------------------------------------------------- 4_1s, 3_1s


def test_4_1s_across_materials_two_runs(engine):
    out = engine([{"L1": 1.2, "L2": 1.3}, {"L1": 1.1, "L2": 1.4}], only("4_1s"))
    assert [o.scoped for o in out] == [set(), {("4_1s", AM)}]


def test_4_1s_within_material_four_runs(engine):
    out = engine([{"L1": 1.5, "L2": -0.5}] * 4, only("4_1s"))
    assert [o.names for o in out] == [[], [], [], ["4_1s"]]
    assert out[3].scoped == {("4_1s", WM)}


def test_4_1s_value_exactly_at_1s_breaks(engine):
    out = engine(
        [{"L1": 1.5, "L2": -0.5}, {"L1": 1.5, "L2": -0.5}, {"L1": 1, "L2": -0.5}, {"L1": 1.5, "L2": -0.5}],
        only("4_1s"),
    )
    assert all(o.names == [] for o in out)


# ---------------------------------------------------------------- x rules


def test_10_x_across_two_materials_over_five_runs(engine):
    runs = [{"L1": 0.4, "L2": 0.2}] * 5
    out = engine(runs, only("10_x"))
    assert [o.names for o in out] == [[], [], [], [], ["10_x"]]
    assert out[4].scoped == {("10_x", AM)}


def test_10_x_negative_side_and_within_material(engine):
    runs = [{"L1": -0.3, "L2": 0.3 if i % 2 else -0.3} for i in range(10)]
    out = engine(runs, only("10_x"))
    assert [o.names for o in out] == [[]] * 9 + [["10_x"]]
    assert out[9].scoped == {("10_x", WM)}


def test_value_on_the_mean_breaks_x_streak(engine):
    runs = [{"L1": 0.4, "L2": 0.2}] * 2 + [{"L1": 0, "L2": 0.2}] + [{"L1": 0.4, "L2": 0.2}] * 4
    out = engine(runs, only("10_x"))
    assert all(o.names == [] for o in out[:7])  # L1 on the mean in run 3: no 10 in a row
    out = engine([*runs, {"L1": 0.4, "L2": 0.2}], only("10_x"))
    assert out[7].names == ["10_x"]  # runs 4-8: ten on the same side again


@pytest.mark.parametrize(("rule", "runs_needed"), [("8_x", 4), ("12_x", 6), ("6_x", 3)])
def test_x_rules_run_aligned_over_two_materials(engine, rule, runs_needed):
    out = engine([{"L1": -0.4, "L2": -0.2}] * runs_needed, only(rule))
    assert [o.names for o in out] == [[]] * (runs_needed - 1) + [[rule]]


# ---------------------------------------------------------------- three levels


def test_three_level_rules(engine):
    rules = only("2of3_2s", "3_1s", "6_x", "9_x", "R_4s", "1_3s")
    assert engine([{"L1": 2.5, "L2": 2.2, "L3": 0}], rules)[0].scoped == {("2of3_2s", AM)}
    assert engine([{"L1": 2.5, "L2": -2.2, "L3": 0}], rules)[0].scoped == {("R_4s", WR)}
    assert engine([{"L1": -1.5, "L2": -1.2, "L3": -1.1}], rules)[0].scoped == {("3_1s", AM)}
    six = engine([{"L1": 0.3, "L2": 0.2, "L3": 0.1}] * 2, rules)
    assert [o.names for o in six] == [[], ["6_x"]]
    nine_runs = [{"L1": 0.3, "L2": -0.2, "L3": 0.1}] * 2 + [{"L1": 0.3, "L2": 0.2, "L3": 0.1}] * 3
    no_reset = RuleSet.from_names(rules.active, [], reset_on_reject=False)
    assert [o.names for o in engine(nine_runs, no_reset)][2:] == [[], ["6_x"], ["6_x", "9_x"]]
    assert [o.names for o in engine(nine_runs, rules)][2:] == [[], ["6_x"], []]  # reset after run 4


def test_2of3_2s_within_material(engine):
    runs = [
        {"L1": 2.5, "L2": 0},
        {"L1": 0, "L2": 0},
        {"L1": 2.1, "L2": 0},
        {"L1": 0, "L2": 0},
        {"L1": 0, "L2": 0},
        {"L1": 2.1, "L2": 0},
    ]
    out = engine(runs, only("2of3_2s"))
    assert [o.names for o in out] == [[], [], ["2of3_2s"], [], [], []]
    assert out[2].scoped == {("2of3_2s", WM)}


def test_2of3_2s_needs_the_current_run(engine):
    runs = [{"L1": 2.5, "L2": 0}, {"L1": 2.1, "L2": 0}, {"L1": 0, "L2": 0}]
    out = engine(runs, only("2of3_2s", reset=False))
    assert [o.names for o in out] == [[], ["2of3_2s"], []]


# ---------------------------------------------------------------- 7_T


@pytest.mark.parametrize("direction", [1, -1])
def test_7_t_trend(engine, direction):
    zs = [direction * (-1.5 + 0.5 * i) for i in range(8)]
    runs = [{"L1": z, "L2": 0.1 if i % 2 else -0.1} for i, z in enumerate(zs)]
    out = engine(runs, only(warn=("7_T",)))
    assert [o.names for o in out] == [[]] * 6 + [["7_T"], ["7_T"]]  # a warning does not reset
    assert out[6].scoped == {("7_T", WM)}
    assert out[6].decision == "warning"
    as_reject = engine(runs, only("7_T"))
    assert [o.decision for o in as_reject][5:] == ["accept", "reject", "accept"]  # reset after the reject


def test_7_t_equal_values_break_the_trend(engine):
    zs = [-1.5, -1, -0.5, -0.5, 0, 0.5, 1, 1.5]
    out = engine([{"L1": z, "L2": 0} for z in zs], only("7_T"))
    assert all(o.names == [] for o in out)


def test_7_t_compares_exact_z_across_different_targets(engines, series):
    from decimal import Decimal

    from qc.model import QcObservation

    # same material, the target SD changes mid-lot; z rises 0.1 per run, one pair is an exact tie
    obs = []
    for i, (v, m, s) in enumerate(
        [
            (99, 100, 10),
            (100, 100, 3),
            ("100.3", 100, 3),
            ("100.6", 100, 3),
            ("100.9", 100, 3),
            ("101.2", 100, 3),
            ("100.5", 100, "1.25"),
        ]
    ):
        obs.append(QcObservation(f"r{i}", "L1", "A", Decimal(str(v)), Decimal(m), Decimal(str(s))))
    ref, vec = engines
    # z: -0.1, 0, 0.1, 0.2, 0.3, 0.4, 0.4 -> the last step is a tie, so no 7_T
    assert [o.names for o in ref(obs, only("7_T"))] == [[]] * 7
    assert [o.names for o in vec(obs, only("7_T"))] == [[]] * 7
    obs[-1] = QcObservation("r6", "L1", "A", Decimal("100.51"), Decimal(100), Decimal("1.25"))
    assert ref(obs, only("7_T"))[-1].names == ["7_T"]
    assert vec(obs, only("7_T"))[-1].names == ["7_T"]


# ---------------------------------------------------------------- history: reset, lots, missing levels


def test_history_resets_after_a_rejected_run(engine):
    runs = [{"L1": 3.5, "L2": 1.5}, {"L1": 1.5, "L2": 1.5}]
    with_reset = engine(runs, only("1_3s", "4_1s"))
    assert [o.decision for o in with_reset] == ["reject", "accept"]
    no_reset = engine(runs, only("1_3s", "4_1s", reset=False))
    assert [o.names for o in no_reset] == [["1_3s"], ["4_1s"]]


def test_warning_does_not_reset_history(engine):
    runs = [{"L1": 2.5, "L2": 1.5}, {"L1": 1.5, "L2": 1.5}]
    out = engine(runs, only("1_2s", "4_1s", warn=("1_2s",)))
    assert [o.decision for o in out] == ["warning", "reject"]


def test_new_lot_starts_a_fresh_history(engine):
    same = engine([{"L1": 2.5, "L2": 0}, {"L1": 2.5, "L2": 0}], only("2_2s"))
    assert same[1].names == ["2_2s"]
    new_lot = engine([{"L1": 2.5, "L2": 0}, {"L1": (2.5, "B"), "L2": 0}], only("2_2s"))
    assert new_lot[1].names == []
    # a lot change of one material also restarts the across-materials windows
    pooled = engine([{"L1": 1.5, "L2": 1.5}, {"L1": (1.5, "B"), "L2": 1.5}], only("4_1s"))
    assert pooled[1].names == []
    # ... while the other material keeps its own history
    other = engine([{"L1": 2.5, "L2": 2.5}, {"L1": (0, "B"), "L2": 2.5}], only("2_2s", reset=False))
    assert other[1].scoped == {("2_2s", WM)}


def test_level_missing_from_a_run(engine):
    full = {"L1": 0.4, "L2": 0.2}
    runs = [full, full, full, {"L1": 0.4}, full, full]
    out = engine(runs, only("10_x"))
    # run-aligned window: the newest whole runs holding >= 10 values; run 4 holds only one, so at run 5
    # the window r2..r5 has 7 values and r1..r5 has 9: not yet; at run 6 r1..r6 has 11 values, all positive
    assert [o.names for o in out] == [[]] * 5 + [["10_x"]]
    assert out[5].scoped == {("10_x", AM)}


def test_missing_level_is_skipped_not_a_break_within_material(engine):
    runs = [{"L1": 2.5, "L2": 0}, {"L2": 0}, {"L1": 2.5, "L2": 0}]
    assert engine(runs, only("2_2s"))[2].scoped == {("2_2s", WM)}


def test_single_material_run_has_no_across_materials_view(engine):
    runs = [{"L1": 0, "L2": 2.5}, {"L1": 2.5}]
    out = engine(runs, only("2_2s", "1_2s", warn=("1_2s",)))
    assert [o.decision for o in out] == ["warning", "warning"]


# ---------------------------------------------------------------- rule sets


def test_rule_set_parsing():
    rs = RuleSet.from_names(["1_2s", "1_3s", "10_x"], ["1_2s", "7_T"])
    assert rs.reject == {"1_3s", "10_x"}
    assert rs.warn == {"1_2s", "7_T"}
    assert rs.active == {"1_2s", "1_3s", "10_x", "7_T"}
    with pytest.raises(QcInputError, match="unknown rule name '13s'"):
        RuleSet.from_names(["13s"])
    with pytest.raises(QcInputError, match="unknown warning rule"):
        RuleSet.from_names(["1_3s"], ["7t"])


def test_default_rule_set():
    assert DEFAULT.reject == {"1_3s", "2_2s", "R_4s", "4_1s", "10_x"}
    assert DEFAULT.warn == {"1_2s", "7_T"}
    assert DEFAULT.reset_on_reject is True


def test_all_rules_quiet_series_is_accepted(engine):
    runs = [{"L1": 0.5 if i % 2 else -0.5, "L2": -0.5 if i % 2 else 0.5} for i in range(30)]
    assert {o.decision for o in engine(runs, ALL)} == {"accept"}
