"""Autoverification decision (CLSI AUTO10): a result is released without a person only when every check of
its test's rule set passes. Pure: facts in, decision out, so the simulator (CLSI AUTO15) replays it.

A test without a rule set (or with it disabled) is never autoverified; its results still get every check
evaluated, so the validation queue shows the reasons.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from lis.models import AutoverificationRuleSet
from lis.models.workflow import AUTOVERIFICATION_RULES
from lis.services.workflow.flags import DeltaOutcome, value_bounds
from lis.services.workflow.ranges import RangeLimits

_FLAG_SPLIT = re.compile(r"[\s,~\\^|&]+")


@dataclass(frozen=True, slots=True)
class RuleSetSpec:
    """A rule set detached from the session (loaded once per batch)."""

    test_code: str
    enabled: bool = True
    av_low: float | None = None
    av_high: float | None = None
    rules: tuple[str, ...] = AUTOVERIFICATION_RULES
    error_flags: frozenset[str] = frozenset()

    @classmethod
    def of(cls, row: AutoverificationRuleSet) -> RuleSetSpec:
        # the QC and critical checks always apply, even if the row was edited by hand without them
        wanted = {r.strip() for r in row.rules.split(",") if r.strip()} | {"qc_accepted", "not_critical"}
        return cls(row.test_code, row.enabled, row.av_low, row.av_high,
                   tuple(r for r in AUTOVERIFICATION_RULES if r in wanted), frozenset(row.error_flags.split()))


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    rule: str
    passed: bool
    detail: str = ""


@dataclass(slots=True)
class ResultFacts:
    """Everything the checks look at for one result (built by the evaluation from one batch of queries)."""

    result_id: int
    test_code: str
    numeric_test: bool
    value: str
    number: float | None
    comparator: str
    instrument_flags: str
    result_status: str
    lis_flag: str
    critical: bool
    unit_ok: bool
    unit_detail: str
    plausible: bool
    limits: RangeLimits | None
    delta: DeltaOutcome | None
    rerun_of_id: int | None
    comment: str
    held_reason: str | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    autoverified: bool
    outcomes: tuple[RuleOutcome, ...]

    @property
    def failed(self) -> list[RuleOutcome]:
        return [o for o in self.outcomes if not o.passed]

    def reasons(self) -> str:
        return "; ".join(o.detail or o.rule for o in self.failed)

    def rules_json(self) -> str:
        """``[{"rule": ..., "passed": ..., "detail": ...}, ...]`` (fragments cached: most outcomes repeat)."""
        return "[" + ",".join(_outcome_json(o) for o in self.outcomes) + "]"


@lru_cache(maxsize=4096)
def _outcome_json(o: RuleOutcome) -> str:
    return json.dumps({"rule": o.rule, "passed": o.passed, "detail": o.detail}, ensure_ascii=False,
                      separators=(",", ":"))


_PASS = {rule: RuleOutcome(rule, True) for rule in AUTOVERIFICATION_RULES}


def _qc_accepted(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    if f.held_reason:
        return RuleOutcome("qc_accepted", False, f"held by QC ({f.held_reason})")
    return _PASS["qc_accepted"]


def _no_error_flag(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    if f.result_status.upper() == "X":
        return RuleOutcome("no_error_flag", False, "the instrument could not do the test (result status X)")
    if f.instrument_flags and f.instrument_flags != "N":
        bad = sorted({t for t in _FLAG_SPLIT.split(f.instrument_flags) if t} & spec.error_flags)
        if bad:
            return RuleOutcome("no_error_flag", False, f"instrument error flag {' '.join(bad)}")
    return _PASS["no_error_flag"]


def _numeric(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    if f.numeric_test and f.number is None:
        return RuleOutcome("numeric", False, f"value {f.value!r} is not a number")
    return _PASS["numeric"]


def _unit(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    return _PASS["unit"] if f.unit_ok else RuleOutcome("unit", False, f.unit_detail)


def _plausible(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    if f.plausible:
        return _PASS["plausible"]
    return RuleOutcome("plausible", False, "outside the validity (plausibility) limits")


def _not_critical(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    return RuleOutcome("not_critical", False, f"critical value ({f.lis_flag})") if f.critical \
        else _PASS["not_critical"]


_NO_PREVIOUS = RuleOutcome("delta", True, "no previous result to compare")


def _delta(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    if f.delta is None:
        return _NO_PREVIOUS
    return RuleOutcome("delta", f.delta.ok, f.delta.detail if f.delta.ok else f"delta check: {f.delta.detail}")


def _no_rerun_pending(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    if f.rerun_of_id is not None:
        return RuleOutcome("no_rerun_pending", False, f"rerun of result {f.rerun_of_id}: compare with the original")
    return _PASS["no_rerun_pending"]


def _no_comment(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    if f.comment.strip():
        return RuleOutcome("no_comment", False, f"comment: {f.comment.strip()[:80]}")
    return _PASS["no_comment"]


def _av_range(f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    rule = "autoverification_range"
    if f.number is None:
        if f.lis_flag == "A":
            return RuleOutcome(rule, False, f"qualitative result {f.value!r} is not the normal {f.limits.text!r}"
                               if f.limits else f"abnormal qualitative result {f.value!r}")
        if f.numeric_test:
            return RuleOutcome(rule, False, "no number to compare with the autoverification range")
        return _PASS[rule]
    lo, hi = value_bounds(f.number, f.comparator)
    if spec.av_low is not None and lo < spec.av_low:
        return RuleOutcome(rule, False, f"{f.value} is below the autoverification range (>= {spec.av_low:g})")
    if spec.av_high is not None and hi > spec.av_high:
        return RuleOutcome(rule, False, f"{f.value} is above the autoverification range (<= {spec.av_high:g})")
    return _PASS[rule]


_CHECKS: dict[str, Callable[[ResultFacts, RuleSetSpec], RuleOutcome]] = {
    "qc_accepted": _qc_accepted, "no_error_flag": _no_error_flag, "numeric": _numeric, "unit": _unit,
    "plausible": _plausible, "not_critical": _not_critical, "autoverification_range": _av_range, "delta": _delta,
    "no_rerun_pending": _no_rerun_pending, "no_comment": _no_comment,
}
assert set(_CHECKS) == set(AUTOVERIFICATION_RULES)


def _check(rule: str, f: ResultFacts, spec: RuleSetSpec) -> RuleOutcome:
    return _CHECKS[rule](f, spec)


def decide(facts: ResultFacts, spec: RuleSetSpec | None) -> Decision:
    """Run the rule set's checks in order; autoverified only if the set is enabled and all pass."""
    if spec is None or not spec.enabled:
        outcomes = [RuleOutcome("rule_set", False, f"autoverification is not enabled for {facts.test_code}")]
        outcomes += [_check(rule, facts, spec or RuleSetSpec(facts.test_code)) for rule in AUTOVERIFICATION_RULES]
        return Decision(False, tuple(outcomes))
    outcomes = [_check(rule, facts, spec) for rule in spec.rules]
    return Decision(all(o.passed for o in outcomes), tuple(outcomes))
