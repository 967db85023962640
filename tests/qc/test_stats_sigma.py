"""Statistics (qc.stats) and the sigma metric with its rule-set proposal (qc.sigma)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qc.model import QcInputError
from qc.sigma import propose_rules, sigma_metric
from qc.stats import compare_to_target, cumulative, establish_target, summarize


def test_summary():
    s = summarize(["98", "100", "102"])
    assert (s.n, s.mean, s.sd) == (3, Decimal(100), Decimal(2))
    assert s.cv_pct == Decimal(2)
    assert summarize([5.5]).sd is None
    with pytest.raises(QcInputError):
        summarize([])
    with pytest.raises(QcInputError, match="not a number"):
        summarize(["1", "----"])


def test_cumulative_and_target_comparison():
    cum = cumulative([100, 104, 102])
    assert [c.mean for c in cum] == [Decimal(100), Decimal(102), Decimal(102)]
    cmp = compare_to_target([101, 103, 102], target_mean=100, target_sd=2)
    assert cmp.bias == Decimal(2)
    assert cmp.bias_pct == Decimal(2)
    assert cmp.mean_z == Decimal(1)
    assert cmp.sd_ratio == Decimal("0.5")
    with pytest.raises(QcInputError, match="SD must be > 0"):
        compare_to_target([1, 2], 1, 0)


def test_establish_target_from_first_20_runs():
    values = [100 + (i % 5) - 2 for i in range(25)] + [500]
    t = establish_target(values)
    assert t.n == 20
    assert t.mean == Decimal(100)
    assert t.sd == summarize(values[:20]).sd
    assert establish_target(values, n_runs=5).n == 5
    with pytest.raises(QcInputError, match="needs 20 runs, only 3"):
        establish_target([1, 2, 3])
    with pytest.raises(QcInputError, match="no spread"):
        establish_target([7] * 20)


def test_sigma_metric():
    assert sigma_metric(10, -2, 1) == pytest.approx(8)
    assert sigma_metric(10, 2, 2) == pytest.approx(4)
    with pytest.raises(QcInputError):
        sigma_metric(10, 0, 0)


@pytest.mark.parametrize(
    ("sigma", "levels", "rules"),
    [
        (6.0, 2, ("1_3s",)),
        (7.5, 3, ("1_3s",)),
        (5.0, 2, ("1_3s", "2_2s", "R_4s")),
        (5.99, 3, ("1_3s", "2of3_2s", "R_4s")),
        (4.0, 2, ("1_3s", "2_2s", "R_4s", "4_1s")),
        (4.5, 3, ("1_3s", "2of3_2s", "R_4s", "3_1s")),
        (3.99, 2, ("1_3s", "2_2s", "R_4s", "4_1s", "10_x")),
        (2.0, 3, ("1_3s", "2of3_2s", "R_4s", "3_1s", "6_x")),
    ],
)
def test_rule_proposal(sigma, levels, rules):
    p = propose_rules(sigma, levels)
    assert p.rules == rules
    assert p.confirmed is False and "confirm" in p.note
    assert p.to_rule_set().reject == set(rules) - {"1_2s"}


def test_low_sigma_lists_alternative():
    assert propose_rules(3, 2).alternatives == ("8_x",)
    assert propose_rules(3, 3).alternatives == ("9_x",)
    with pytest.raises(QcInputError):
        propose_rules(5, 4)
