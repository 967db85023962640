"""Sigma metric and a Westgard rule-set proposal derived from it.

Sigma = (TEa − |bias|) / CV, all in percent (STANDARDS.md: the rule set is chosen per analyte and instrument,
e.g. from the sigma metric).  The proposal follows the Westgard sigma rules and is only a PROPOSAL: the
laboratory reviews and confirms it before it is used.

Two levels: σ ≥ 6 → 1_3s; 5 ≤ σ < 6 → 1_3s, 2_2s, R_4s; 4 ≤ σ < 5 → + 4_1s; σ < 4 → + 10_x (8_x is the
documented alternative).  Three levels: σ ≥ 6 → 1_3s; 5–6 → 1_3s, 2of3_2s, R_4s; 4–5 → + 3_1s;
< 4 → + 6_x (9_x alternative).
"""

from __future__ import annotations

from dataclasses import dataclass

from qc.model import DEFAULT_WARNING_RULES, QcInputError, RuleSet

PROPOSAL_NOTE = (
    "Proposal derived from the sigma metric; the laboratory must review and confirm it before use."
)


def sigma_metric(tea_pct: float, bias_pct: float, cv_pct: float) -> float:
    """(TEa − |bias|) / CV with all three in percent."""
    if tea_pct <= 0:
        raise QcInputError(f"TEa must be > 0 %, got {tea_pct}")
    if cv_pct <= 0:
        raise QcInputError(f"CV must be > 0 %, got {cv_pct}")
    return (tea_pct - abs(bias_pct)) / cv_pct


@dataclass(frozen=True, slots=True)
class RuleProposal:
    """Proposed rejection rules for a sigma value; ``confirmed`` stays False until the lab confirms."""

    sigma: float
    levels: int
    band: str
    rules: tuple[str, ...]
    alternatives: tuple[str, ...]
    note: str = PROPOSAL_NOTE
    confirmed: bool = False

    def to_rule_set(self, warning_rules: tuple[str, ...] = DEFAULT_WARNING_RULES) -> RuleSet:
        """The proposal as a :class:`RuleSet` (rejection rules plus the given warning rules)."""
        return RuleSet.from_names(self.rules + warning_rules, warning_rules)


def propose_rules(sigma: float, levels: int = 2) -> RuleProposal:
    """Rule-set proposal for a sigma metric and 2 or 3 control levels (bands include their lower bound)."""
    if levels not in (2, 3):
        raise QcInputError(f"rule proposals exist for 2 or 3 control levels, not {levels}")
    if levels == 2:
        mid, extra, long_rule, alt = ("2_2s", "R_4s"), "4_1s", "10_x", ("8_x",)
    else:
        mid, extra, long_rule, alt = ("2of3_2s", "R_4s"), "3_1s", "6_x", ("9_x",)
    if sigma >= 6:
        return RuleProposal(sigma, levels, ">= 6", ("1_3s",), ())
    if sigma >= 5:
        return RuleProposal(sigma, levels, "5 to < 6", ("1_3s", *mid), ())
    if sigma >= 4:
        return RuleProposal(sigma, levels, "4 to < 5", ("1_3s", *mid, extra), ())
    return RuleProposal(sigma, levels, "< 4", ("1_3s", *mid, extra, long_rule), alt)
