"""Pure rules: range selection at age/sex boundaries, flags, censored values, plausibility, units, delta,
the AUTO10 checks one by one, and the calculated-test formulas (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from lis.models.workflow import AUTOVERIFICATION_RULES
from lis.services.workflow.autoverify import ResultFacts, RuleSetSpec, decide
from lis.services.workflow.calculated import egfr_ckd_epi_2021, ldl_friedewald
from lis.services.workflow.flags import delta_check, interpret, plausible, unit_matches
from lis.services.workflow.ranges import RangeLimits, age_in_days, select_range


def rng(id_: int, sex: str = "U", lo_days: int = 0, hi_days: int | None = None, instrument: str | None = None,
        low: float | None = 1.0, high: float | None = 2.0, cl: float | None = None, ch: float | None = None,
        text: str = "") -> RangeLimits:
    return RangeLimits(id_, "T", sex, lo_days, hi_days, instrument, low, high, cl, ch, text)


RANGES = [
    rng(1, "U", 0, None),  # any
    rng(2, "F", 6575, None),  # adult women (18 y)
    rng(3, "U", 0, 6575),  # children
    rng(4, "U", 0, 28),  # neonates
    rng(5, "F", 6575, None, instrument="xn-1"),  # adult women on xn-1
]


@pytest.mark.parametrize(("sex", "age", "instrument", "expected"), [
    ("F", 6575, "other", 2),  # exactly 18 years: the adult band (lower bound inclusive)
    ("F", 6574, "other", 3),  # one day before: the child band (upper bound exclusive)
    ("M", 6575, "other", 1),  # no male range: the any-sex, any-age one
    ("F", 27, "other", 4),  # neonate: the narrowest band wins
    ("F", 28, "other", 3),
    ("F", 9000, "xn-1", 5),  # instrument-specific beats general
    ("U", 9000, "xn-1", 1),  # unknown sex: only U ranges
    ("F", None, "other", 2),  # unknown age: adult (open-ended) ranges only
])
def test_most_specific_range_wins(sex: str, age: int | None, instrument: str, expected: int) -> None:
    chosen = select_range(RANGES, sex, age, instrument)
    assert chosen is not None and chosen.id == expected


def test_age_is_counted_on_the_local_calendar() -> None:
    # 17:30 UTC on the 25th is already the 26th in Vietnam: the 18th birthday has come
    assert age_in_days(date(2008, 11, 26), datetime(2026, 11, 25, 17, 30, tzinfo=UTC)) == 6574
    assert age_in_days(date(2008, 11, 26), datetime(2026, 11, 25, 16, 30, tzinfo=UTC)) == 6573
    assert age_in_days(None, datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(("value", "comparator", "flag", "critical"), [
    (1.0, "", "", False), (2.0, "", "", False),  # limits themselves are normal
    (0.99, "", "L", False), (2.01, "", "H", False),
    (0.5, "", "L", False),  # on the critical limit: low, not critical
    (0.49, "", "LL", True), (10.01, "", "HH", True), (10.0, "", "H", False),
    (0.5, "<", "L", False),  # "<0.5": certainly below 1.0
    (1.5, "<", "", False),  # "<1.5": could be normal, no flag
    (0.4, "<", "LL", True),
    (20.0, ">", "HH", True), (1.5, ">", "", False),
])
def test_flags_and_critical_limits(value: float, comparator: str, flag: str, critical: bool) -> None:
    limits = rng(1, low=1.0, high=2.0, cl=0.5, ch=10.0)
    found = interpret(value, comparator, str(value), limits)
    assert (found.flag, found.critical) == (flag, critical)


def test_qualitative_abnormal_and_no_range() -> None:
    negative = rng(1, low=None, high=None, text="Negative")
    assert interpret(None, "", "negative", negative).flag == ""
    assert interpret(None, "", "Positive", negative).flag == "A"
    assert interpret(5.0, "", "5", None).flag == ""


def test_plausibility_units_and_delta() -> None:
    assert plausible(5.0, "", 0.0, 100.0) and not plausible(150.0, "", 0.0, 100.0)
    assert not plausible(-1.0, "", 0.0, None) and plausible(None, "", 0.0, 1.0)
    assert not plausible(200.0, ">", None, 100.0) and plausible(50.0, "<", 0.0, 100.0)
    assert unit_matches("µmol/L", "umol/L") and unit_matches("10^3/uL", "10*3/uL") and unit_matches("", "g/L")
    assert not unit_matches("mg/dL", "mmol/L")
    ok = delta_check(5.0, 4.0, 7, abs_limit=2.0, pct_limit=None)
    assert ok.ok and ok.change == 1.0 and ok.previous_id == 7
    assert not delta_check(7.0, 4.0, 7, abs_limit=2.0, pct_limit=None).ok
    assert not delta_check(5.0, 4.0, 7, abs_limit=None, pct_limit=20.0).ok  # 25 %
    assert delta_check(4.8, 4.0, 7, abs_limit=None, pct_limit=20.0).ok  # exactly 20 %


FACTS = ResultFacts(
    result_id=1, test_code="GLU", numeric_test=True, value="5.0", number=5.0, comparator="",
    instrument_flags="N", result_status="F", lis_flag="", critical=False, unit_ok=True, unit_detail="",
    plausible=True, limits=rng(1, low=3.9, high=6.4), delta=None, rerun_of_id=None, comment="", held_reason=None,
)
SPEC = RuleSetSpec("GLU", True, 3.0, 10.0, AUTOVERIFICATION_RULES, frozenset(["<", ">", "W", "E", "X"]))


@pytest.mark.parametrize(("change", "failing_rule"), [
    ({"held_reason": "rejected_run"}, "qc_accepted"),
    ({"instrument_flags": "H W"}, "no_error_flag"),
    ({"result_status": "X"}, "no_error_flag"),
    ({"number": None, "value": "----"}, "numeric"),
    ({"unit_ok": False, "unit_detail": "unit 'mg/dL'"}, "unit"),
    ({"plausible": False}, "plausible"),
    ({"critical": True, "lis_flag": "HH"}, "not_critical"),
    ({"number": 12.0, "value": "12.0"}, "autoverification_range"),
    ({"number": 2.0, "value": "2.0"}, "autoverification_range"),
    ({"delta": delta_check(9.0, 5.0, 3, 1.0, None)}, "delta"),
    ({"rerun_of_id": 3}, "no_rerun_pending"),
    ({"comment": "haemolysed"}, "no_comment"),
])
def test_each_autoverification_rule_blocks(change: dict[str, object], failing_rule: str) -> None:
    assert decide(FACTS, SPEC).autoverified
    decision = decide(replace(FACTS, **change), SPEC)  # type: ignore[arg-type]
    assert not decision.autoverified
    assert decision.failed[0].rule == failing_rule  # the first failing check names the cause
    assert len(decision.failed) == (2 if failing_rule == "numeric" else 1)
    assert decision.reasons()


def test_rules_not_in_the_set_are_not_applied_and_missing_set_never_autoverifies() -> None:
    no_comment_check = replace(SPEC, rules=tuple(r for r in AUTOVERIFICATION_RULES if r != "no_comment"))
    assert decide(replace(FACTS, comment="see note"), no_comment_check).autoverified
    missing = decide(FACTS, None)
    assert not missing.autoverified and missing.failed[0].rule == "rule_set"
    assert not decide(FACTS, replace(SPEC, enabled=False)).autoverified


def test_egfr_ckd_epi_2021_and_ldl_friedewald() -> None:
    # Scr 1.0 mg/dL (88.42 µmol/L), 50 years: female 69, male 92 mL/min/1.73 m² (CKD-EPI 2021)
    assert egfr_ckd_epi_2021(88.42, 50, "F") == pytest.approx(68.6, abs=0.2)
    assert egfr_ckd_epi_2021(88.42, 50, "M") == pytest.approx(91.7, abs=0.3)
    assert egfr_ckd_epi_2021(60.0, 30, "F") == pytest.approx(121, abs=1.5)  # below kappa: alpha branch
    assert egfr_ckd_epi_2021(88.42, 17, "F") is None and egfr_ckd_epi_2021(88.42, 40, "U") is None
    assert ldl_friedewald(5.2, 1.3, 1.1) == pytest.approx(5.2 - 1.3 - 0.5)
    assert ldl_friedewald(5.2, 1.3, 4.5) is None


def test_qc_and_critical_checks_cannot_be_dropped_from_a_stored_rule_set() -> None:
    from lis.models import AutoverificationRuleSet

    spec = RuleSetSpec.of(AutoverificationRuleSet(test_code="GLU", rules="delta", error_flags="W"))
    assert spec.rules == ("qc_accepted", "not_critical", "delta") and spec.error_flags == frozenset({"W"})
    assert not decide(replace(FACTS, critical=True, lis_flag="HH"), spec).autoverified
