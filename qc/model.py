"""Typed data model of the Westgard QC engine: observations, rules, rule sets and decisions.

Project decisions implemented here (STANDARDS.md, "Westgard QC (decisions for this project)"):

* the rule catalogue (1_2s, 1_3s, 2_2s, R_4s, 4_1s, 8_x, 10_x, 12_x, 2of3_2s, 3_1s, 6_x, 9_x, 7_T) and the
  scopes each rule is evaluated in (see ``RULE_SPECS`` and qc/README.md);
* a rule set says which rules reject and which only warn; a rule named in both lists warns;
* the default rule set is 1_2s, 1_3s, 2_2s, R_4s, 4_1s, 10_x with 1_2s and 7_T as warnings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal

Number = Decimal | int | float | str


class QcInputError(ValueError):
    """Bad QC input (missing target, SD <= 0, non-numeric value, unknown rule, runs out of order...).

    The message names what is wrong and where, so a technician can fix the data.
    """


class Scope(StrEnum):
    """Where a rule looked: one run, one material across runs, or all materials across whole runs."""

    WITHIN_RUN = "within-run"
    WITHIN_MATERIAL = "across-runs-within-material"
    ACROSS_MATERIALS = "across-materials"


class Decision(StrEnum):
    """Outcome of a QC run."""

    ACCEPT = "accept"
    WARNING = "warning"
    REJECT = "reject"


DECISION_ORDER = {"accept": 0, "warning": 1, "reject": 2}


class Severity(StrEnum):
    """Whether a fired rule rejects the run or only warns."""

    REJECT = "reject"
    WARNING = "warning"


RuleKind = Literal["single", "range", "streak", "two_of_three", "trend"]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """Static definition of one Westgard rule.

    ``band`` is the minimum absolute z band an observation must reach on one side of the mean:
    1 = any value off the mean (x-rules), 2 = beyond 1 SD, 3 = beyond 2 SD, 4 = beyond 3 SD
    ("beyond k SD" is strict: |z| > k).  ``n`` is the number of observations the rule needs.
    """

    name: str
    kind: RuleKind
    n: int
    band: int
    scopes: tuple[Scope, ...]
    description: str


_WR = (Scope.WITHIN_RUN,)
_BOTH = (Scope.WITHIN_MATERIAL, Scope.ACROSS_MATERIALS)

RULE_SPECS: dict[str, RuleSpec] = {
    spec.name: spec
    for spec in (
        RuleSpec("1_2s", "single", 1, 3, _WR, "one control beyond mean ± 2 SD"),
        RuleSpec("1_3s", "single", 1, 4, _WR, "one control beyond mean ± 3 SD"),
        RuleSpec("R_4s", "range", 2, 3, _WR, "in the same run one control > +2 SD and another < −2 SD"),
        RuleSpec("2_2s", "streak", 2, 3, _BOTH, "two consecutive controls beyond the same 2 SD limit"),
        RuleSpec("2of3_2s", "two_of_three", 3, 3, _BOTH, "2 of the last 3 controls beyond the same 2 SD"),
        RuleSpec("3_1s", "streak", 3, 2, _BOTH, "three consecutive controls beyond the same 1 SD limit"),
        RuleSpec("4_1s", "streak", 4, 2, _BOTH, "four consecutive controls beyond the same 1 SD limit"),
        RuleSpec("6_x", "streak", 6, 1, _BOTH, "six consecutive controls on the same side of the mean"),
        RuleSpec("8_x", "streak", 8, 1, _BOTH, "eight consecutive controls on the same side of the mean"),
        RuleSpec("9_x", "streak", 9, 1, _BOTH, "nine consecutive controls on the same side of the mean"),
        RuleSpec("10_x", "streak", 10, 1, _BOTH, "ten consecutive controls on the same side of the mean"),
        RuleSpec("12_x", "streak", 12, 1, _BOTH, "twelve consecutive controls on the same side of the mean"),
        RuleSpec(
            "7_T", "trend", 7, 0, (Scope.WITHIN_MATERIAL,), "seven consecutive controls rising or falling"
        ),
    )
}

#: Longest window any rule needs (12_x); the incremental history keeps this many observations/runs.
MAX_WINDOW = max(spec.n for spec in RULE_SPECS.values())

DEFAULT_REJECT_RULES: tuple[str, ...] = ("1_3s", "2_2s", "R_4s", "4_1s", "10_x")
DEFAULT_WARNING_RULES: tuple[str, ...] = ("1_2s", "7_T")


def parse_rule_names(names: Iterable[str], *, what: str = "rule") -> tuple[str, ...]:
    """Validate rule names (exact spelling, e.g. ``2of3_2s``, ``R_4s``, ``7_T``); keep order, drop repeats."""
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name not in RULE_SPECS:
            known = ", ".join(RULE_SPECS)
            raise QcInputError(f"unknown {what} name {name!r}; known rules: {known}")
        if name not in out:
            out.append(name)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Which Westgard rules are evaluated, and which of them reject or only warn.

    Build it with :meth:`from_names`: the effective set is the union of both lists, and a rule that is in
    the warning list only warns even if it is also in the rejection list.  ``reset_on_reject`` restarts the
    across-run history after a rejected run (project default True).
    """

    reject: frozenset[str] = frozenset(DEFAULT_REJECT_RULES)
    warn: frozenset[str] = frozenset(DEFAULT_WARNING_RULES)
    reset_on_reject: bool = True

    def __post_init__(self) -> None:
        parse_rule_names(self.reject)
        parse_rule_names(self.warn)
        if self.reject & self.warn:
            raise QcInputError(f"rules both reject and warn: {sorted(self.reject & self.warn)}")

    @classmethod
    def from_names(
        cls,
        rules: Iterable[str] = DEFAULT_REJECT_RULES + DEFAULT_WARNING_RULES,
        warning_rules: Iterable[str] = DEFAULT_WARNING_RULES,
        *,
        reset_on_reject: bool = True,
    ) -> RuleSet:
        """Rule set from ``rules`` and ``warning_rules`` (union; the warning list wins)."""
        warn = frozenset(parse_rule_names(warning_rules, what="warning rule"))
        reject = frozenset(parse_rule_names(rules)) - warn
        return cls(reject=reject, warn=warn, reset_on_reject=reset_on_reject)

    @property
    def active(self) -> frozenset[str]:
        """All evaluated rules."""
        return self.reject | self.warn

    def severity(self, rule: str) -> Severity:
        """Severity of a rule in this set."""
        return Severity.REJECT if rule in self.reject else Severity.WARNING


DEFAULT_RULES = RuleSet()


@dataclass(frozen=True, slots=True)
class QcObservation:
    """One control measurement: one material (level) in one run.

    ``value``, ``mean`` and ``sd`` may be ``Decimal``, ``int``, ``str`` or ``float``; a float is taken as the
    decimal it prints as (``repr``), so 102.2 means exactly 102.2.  ``obs_id`` identifies it in violations
    (default: its 0-based position in the evaluated sequence).
    """

    run: str
    material: str
    lot: str
    value: Number
    mean: Number
    sd: Number
    analyte: str = ""
    obs_id: int | str | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    """One fired rule: name, scope, severity, the observations involved and the material (if one)."""

    rule: str
    scope: Scope
    severity: Severity
    observations: tuple[int | str, ...]
    material: str | None = None


@dataclass(frozen=True, slots=True)
class RunDecision:
    """Decision for one QC run of one analyte."""

    run: str
    decision: Decision
    violations: tuple[Violation, ...] = ()
    analyte: str = ""
    observations: tuple[int | str, ...] = field(default=())

    @property
    def rule_names(self) -> list[str]:
        """Names of the rules that fired (rejection and warning), sorted, without repeats."""
        return sorted({v.rule for v in self.violations})
