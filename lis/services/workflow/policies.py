"""The lab's workflow rules as data: autoverification rule sets, delta-check limits, section policies and
reflex rules. Loading them once per batch (:func:`load_policies`) and editing them with validation that
names the offending field (:class:`InvalidDefinition`, HTTP 422)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from lis.models import (
    AutoverificationRuleSet,
    DeltaCheckRule,
    ReferenceRange,
    ReflexRule,
    SectionPolicy,
    TestDefinition,
    utcnow,
)
from lis.models.workflow import AUTOVERIFICATION_RULES, DEFAULT_ERROR_FLAGS
from lis.services import audit
from lis.services.workflow.autoverify import RuleSetSpec
from lis.services.workflow.errors import InvalidDefinition, NotFound
from lis.services.workflow.ranges import RangeLimits

#: checks no rule set may omit (QC hold and critical values always need a person)
MANDATORY_RULES = ("qc_accepted", "not_critical")
REFLEX_CONDITIONS = ("outside_range", "low", "high", "critical", "above", "below")


@dataclass(frozen=True, slots=True)
class TestInfo:
    __test__ = False  # not a pytest class

    code: str
    section: str
    unit: str
    numeric: bool
    decimals: int
    loinc: str
    validity_low: float | None
    validity_high: float | None


@dataclass(frozen=True, slots=True)
class DeltaSpec:
    window_hours: int
    abs_limit: float | None
    pct_limit: float | None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """Section policy; the defaults apply to a section without a row (two-level, no self-validation)."""

    section: str
    two_level: bool = True
    self_validation: bool = False
    auto_release: bool = False


@dataclass(frozen=True, slots=True)
class ReflexSpec:
    id: int
    test_code: str
    condition: str
    threshold: float | None
    add_test: str

    def fires(self, flag: str, critical: bool, number: float | None) -> bool:
        if self.condition == "outside_range":
            return flag in ("L", "H", "LL", "HH", "A")
        if self.condition == "low":
            return flag in ("L", "LL")
        if self.condition == "high":
            return flag in ("H", "HH")
        if self.condition == "critical":
            return critical
        if number is None or self.threshold is None:
            return False
        return number > self.threshold if self.condition == "above" else number < self.threshold


@dataclass
class PolicySnapshot:
    tests: dict[str, TestInfo] = field(default_factory=dict)
    ranges: dict[str, list[RangeLimits]] = field(default_factory=dict)
    rule_sets: dict[str, RuleSetSpec] = field(default_factory=dict)
    delta_rules: dict[str, DeltaSpec] = field(default_factory=dict)
    sections: dict[str, PolicySpec] = field(default_factory=dict)
    reflex: dict[str, list[ReflexSpec]] = field(default_factory=dict)

    def section_policy(self, section: str) -> PolicySpec:
        return self.sections.get(section) or PolicySpec(section)

    def policy_for_test(self, test_code: str | None) -> PolicySpec:
        test = self.tests.get(test_code or "")
        return self.section_policy(test.section if test else "")


def load_policies(session: Session) -> PolicySnapshot:
    """Every rule the evaluation needs, in six small queries (never one query per result)."""
    snap = PolicySnapshot()
    for t in session.exec(select(TestDefinition)).all():
        snap.tests[t.code] = TestInfo(t.code, t.section, t.unit, t.result_type == "numeric", t.decimals,
                                      t.loinc, t.validity_low, t.validity_high)
    for r in session.exec(select(ReferenceRange)).all():
        snap.ranges.setdefault(r.test_code, []).append(RangeLimits.of(r))
    for rs in session.exec(select(AutoverificationRuleSet)).all():
        snap.rule_sets[rs.test_code] = RuleSetSpec.of(rs)
    for d in session.exec(select(DeltaCheckRule)).all():
        snap.delta_rules[d.test_code] = DeltaSpec(d.window_hours, d.abs_limit, d.pct_limit)
    for p in session.exec(select(SectionPolicy)).all():
        snap.sections[p.section] = PolicySpec(p.section, p.two_level, p.self_validation, p.auto_release)
    for x in session.exec(select(ReflexRule).where(col(ReflexRule.enabled)).order_by(col(ReflexRule.id))).all():
        assert x.id is not None
        snap.reflex.setdefault(x.test_code, []).append(ReflexSpec(x.id, x.test_code, x.condition, x.threshold,
                                                                  x.add_test))
    return snap


def section_policy(session: Session, section: str) -> PolicySpec:
    row = session.get(SectionPolicy, section)
    if row is None:
        return PolicySpec(section)
    return PolicySpec(row.section, row.two_level, row.self_validation, row.auto_release)


# -- editing, with validation ----------------------------------------------------------------------------------
def _number(name: str, value: float | None, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidDefinition(name, f"must be a finite number, not {value!r}")
    if positive and value <= 0:
        raise InvalidDefinition(name, f"must be greater than 0, not {value:g}")
    return float(value)


def _known_test(session: Session, name: str, code: str) -> TestDefinition:
    test = session.get(TestDefinition, code)
    if test is None:
        raise InvalidDefinition(name, f"unknown test {code!r}")
    return test


def validate_rule_set(session: Session, test_code: str, *, enabled: bool = True, av_low: float | None = None,
                      av_high: float | None = None, rules: Sequence[str] | None = None,
                      error_flags: str | None = None) -> RuleSetSpec:
    """Check a rule-set definition (for saving or for the simulator); the error names the field."""
    _known_test(session, "test_code", test_code)
    if not isinstance(enabled, bool):
        raise InvalidDefinition("enabled", f"must be true or false, not {enabled!r}")
    low, high = _number("av_low", av_low), _number("av_high", av_high)
    if low is not None and high is not None and low > high:
        raise InvalidDefinition("av_high", f"{high:g} is below av_low {low:g}")
    names = list(AUTOVERIFICATION_RULES if rules is None else rules)
    unknown = [r for r in names if r not in AUTOVERIFICATION_RULES]
    if unknown:
        raise InvalidDefinition("rules", f"unknown rule {unknown[0]!r} (known: {', '.join(AUTOVERIFICATION_RULES)})")
    missing = [r for r in MANDATORY_RULES if r not in names]
    if missing:
        raise InvalidDefinition("rules", f"{' and '.join(missing)} cannot be switched off: a held or critical "
                                "result must never be released without a person")
    flags = " ".join((error_flags if error_flags is not None else DEFAULT_ERROR_FLAGS).split())
    if len(flags) > 100:
        raise InvalidDefinition("error_flags", "at most 100 characters")
    wanted = set(names)
    return RuleSetSpec(test_code, enabled, low, high, tuple(r for r in AUTOVERIFICATION_RULES if r in wanted),
                       frozenset(flags.split()))


def put_rule_set(session: Session, test_code: str, actor: str, *, enabled: bool = True,
                 av_low: float | None = None, av_high: float | None = None,
                 rules: Sequence[str] | None = None, error_flags: str | None = None) -> AutoverificationRuleSet:
    """Create or replace the autoverification rule set of a test (CLSI AUTO10)."""
    spec = validate_rule_set(session, test_code, enabled=enabled, av_low=av_low, av_high=av_high, rules=rules,
                             error_flags=error_flags)
    row = session.get(AutoverificationRuleSet, test_code)
    before = None if row is None else {"enabled": row.enabled, "av_low": row.av_low, "av_high": row.av_high,
                                       "rules": row.rules, "error_flags": row.error_flags}
    row = row or AutoverificationRuleSet(test_code=test_code)
    row.enabled, row.av_low, row.av_high = spec.enabled, spec.av_low, spec.av_high
    row.rules = ",".join(spec.rules)
    row.error_flags = " ".join(sorted(spec.error_flags))
    row.updated_by, row.updated_at = actor, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, actor, "workflow.rule_set.put", "autoverification_rule_set", test_code, before=before,
                 after={"enabled": row.enabled, "av_low": row.av_low, "av_high": row.av_high, "rules": row.rules,
                        "error_flags": row.error_flags})
    return row


def delete_rule_set(session: Session, test_code: str, actor: str) -> None:
    row = session.get(AutoverificationRuleSet, test_code)
    if row is None:
        raise NotFound(f"no autoverification rule set for test {test_code!r}")
    session.delete(row)
    audit.record(session, actor, "workflow.rule_set.delete", "autoverification_rule_set", test_code)


def put_delta_rule(session: Session, test_code: str, actor: str, *, window_hours: int = 168,
                   abs_limit: float | None = None, pct_limit: float | None = None) -> DeltaCheckRule:
    """Create or replace the delta-check limits of a test (CLSI EP33)."""
    _known_test(session, "test_code", test_code)
    if isinstance(window_hours, bool) or not isinstance(window_hours, int) or window_hours <= 0:
        raise InvalidDefinition("window_hours", f"must be a whole number of hours above 0, not {window_hours!r}")
    a, p = _number("abs_limit", abs_limit, positive=True), _number("pct_limit", pct_limit, positive=True)
    if a is None and p is None:
        raise InvalidDefinition("abs_limit", "give abs_limit or pct_limit (or both)")
    row = session.get(DeltaCheckRule, test_code) or DeltaCheckRule(test_code=test_code)
    row.window_hours, row.abs_limit, row.pct_limit, row.updated_by = window_hours, a, p, actor
    session.add(row)
    session.flush()
    audit.record(session, actor, "workflow.delta_rule.put", "delta_check_rule", test_code,
                 after={"window_hours": window_hours, "abs_limit": a, "pct_limit": p})
    return row


def delete_delta_rule(session: Session, test_code: str, actor: str) -> None:
    row = session.get(DeltaCheckRule, test_code)
    if row is None:
        raise NotFound(f"no delta-check rule for test {test_code!r}")
    session.delete(row)
    audit.record(session, actor, "workflow.delta_rule.delete", "delta_check_rule", test_code)


def put_section_policy(session: Session, section: str, actor: str, *, two_level: bool = True,
                       self_validation: bool = False, auto_release: bool = False) -> SectionPolicy:
    """Set a section's validation policy (two-level validation, self-validation, auto-release)."""
    known = set(session.exec(select(TestDefinition.section).distinct()).all())
    if section not in known:
        raise InvalidDefinition("section", f"no test is in section {section!r} (sections: {', '.join(sorted(known))})")
    for name, value in (("two_level", two_level), ("self_validation", self_validation),
                        ("auto_release", auto_release)):
        if not isinstance(value, bool):
            raise InvalidDefinition(name, f"must be true or false, not {value!r}")
    row = session.get(SectionPolicy, section) or SectionPolicy(section=section)
    row.two_level, row.self_validation, row.auto_release = two_level, self_validation, auto_release
    row.updated_by, row.updated_at = actor, utcnow()
    session.add(row)
    session.flush()
    audit.record(session, actor, "workflow.section_policy.put", "section_policy", section,
                 after={"two_level": two_level, "self_validation": self_validation, "auto_release": auto_release})
    return row


def list_section_policies(session: Session) -> list[PolicySpec]:
    sections = sorted(set(session.exec(select(TestDefinition.section).distinct()).all()))
    return [section_policy(session, s) for s in sections]


def add_reflex_rule(session: Session, actor: str, *, test_code: str, condition: str, add_test: str,
                    threshold: float | None = None, enabled: bool = True) -> ReflexRule:
    """A reflex rule: ``test_code`` meeting ``condition`` adds ``add_test`` to the order."""
    _known_test(session, "test_code", test_code)
    _known_test(session, "add_test", add_test)
    if add_test == test_code:
        raise InvalidDefinition("add_test", "a test cannot reflex to itself")
    if condition not in REFLEX_CONDITIONS:
        raise InvalidDefinition("condition", f"must be one of {', '.join(REFLEX_CONDITIONS)}, not {condition!r}")
    value = _number("threshold", threshold)
    if condition in ("above", "below") and value is None:
        raise InvalidDefinition("threshold", f"condition {condition!r} needs a threshold")
    if condition not in ("above", "below") and value is not None:
        raise InvalidDefinition("threshold", f"condition {condition!r} takes no threshold")
    duplicate = session.exec(select(ReflexRule).where(
        ReflexRule.test_code == test_code, ReflexRule.condition == condition, ReflexRule.add_test == add_test,
        ReflexRule.threshold == value if value is not None else col(ReflexRule.threshold).is_(None))).first()
    if duplicate is not None:
        raise InvalidDefinition("condition", f"the same reflex rule exists already (id {duplicate.id})")
    row = ReflexRule(test_code=test_code, condition=condition, threshold=value, add_test=add_test,
                     enabled=enabled, updated_by=actor)
    session.add(row)
    session.flush()
    audit.record(session, actor, "workflow.reflex_rule.add", "reflex_rule", row.id or 0,
                 after={"test_code": test_code, "condition": condition, "threshold": value, "add_test": add_test})
    return row


def delete_reflex_rule(session: Session, rule_id: int, actor: str) -> None:
    row = session.get(ReflexRule, rule_id)
    if row is None:
        raise NotFound(f"reflex rule {rule_id} does not exist")
    session.delete(row)
    audit.record(session, actor, "workflow.reflex_rule.delete", "reflex_rule", rule_id)
