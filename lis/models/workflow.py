"""Result-workflow tables (issue 6): autoverification rule sets, delta-check limits, section policies,
reflex rules, the evaluation record of each result, critical-value notifications, calculated-test inputs.

Rules are data, edited by the lab manager through ``/api/v1/workflow/...``; the code that applies them
lives in :mod:`lis.services.workflow`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Column, Field, SQLModel, Text

from lis.models.types import UTCDateTime, utcnow

#: every CLSI AUTO10 check the autoverification engine knows, in evaluation order
AUTOVERIFICATION_RULES = (
    "qc_accepted",  # QC of the run accepted and the result not held (lis.services.qc_holds)
    "no_error_flag",  # no instrument error flag, result status not X (cannot be done)
    "numeric",  # a numeric test carries a number (censored values allowed)
    "unit",  # the unit sent is the catalogue unit
    "plausible",  # inside the test's validity limits
    "not_critical",
    "autoverification_range",  # inside the rule set's range (qualitative: the normal text)
    "delta",  # within the delta-check limit against the previous result
    "no_rerun_pending",  # not a rerun awaiting comparison with its original
    "no_comment",  # no specimen/result comment from the instrument
)
DEFAULT_ERROR_FLAGS = "< > W E X ! *"


class AutoverificationRuleSet(SQLModel, table=True):
    """Per test: whether autoverification is on, its range, and which AUTO10 checks apply.

    A test without a rule set is never autoverified (every result goes to the validation queue).
    """

    __tablename__ = "autoverification_rule_set"

    test_code: str = Field(primary_key=True, foreign_key="test_definition.code", max_length=32)
    enabled: bool = True
    av_low: float | None = None  # autoverification range (None = unbounded)
    av_high: float | None = None
    rules: str = Field(default=",".join(AUTOVERIFICATION_RULES), max_length=400)  # comma-separated rule names
    error_flags: str = Field(default=DEFAULT_ERROR_FLAGS, max_length=100)  # instrument flags that block
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class DeltaCheckRule(SQLModel, table=True):
    """Delta check for a test: change against the patient's previous result within ``window_hours``."""

    __tablename__ = "delta_check_rule"

    test_code: str = Field(primary_key=True, foreign_key="test_definition.code", max_length=32)
    window_hours: int = 168
    abs_limit: float | None = None  # fails when |new - previous| > abs_limit
    pct_limit: float | None = None  # fails when |new - previous| / |previous| * 100 > pct_limit
    updated_by: str = Field(default="", max_length=64)


class SectionPolicy(SQLModel, table=True):
    """Validation policy of a test section (``TestDefinition.section``); a missing row means the defaults."""

    __tablename__ = "section_policy"

    section: str = Field(primary_key=True, max_length=40)
    two_level: bool = True  # technical validation, then release by a validator
    self_validation: bool = False  # may the technical validator also release the same result?
    auto_release: bool = False  # autoverified results are released at once (else they wait for release)
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ReflexRule(SQLModel, table=True):
    """When a result of ``test_code`` meets ``condition``, add ``add_test`` to the order (e.g. TSH → FT4)."""

    __tablename__ = "reflex_rule"
    __table_args__ = (UniqueConstraint("test_code", "condition", "threshold", "add_test", name="uq_reflex_rule"),)

    id: int | None = Field(default=None, primary_key=True)
    test_code: str = Field(foreign_key="test_definition.code", max_length=32, index=True)
    condition: str = Field(max_length=20)  # outside_range | low | high | above | below | critical
    threshold: float | None = None  # for above / below
    add_test: str = Field(foreign_key="test_definition.code", max_length=32)
    enabled: bool = True
    updated_by: str = Field(default="", max_length=64)


class ResultEvaluation(SQLModel, table=True):
    """What the evaluation found for one result and which autoverification rules passed or failed."""

    __tablename__ = "result_evaluation"

    result_id: int = Field(primary_key=True, foreign_key="result.id")
    evaluated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    decision: str = Field(max_length=20)  # autoverified | pending
    comparator: str = Field(default="", max_length=2)  # censored value: < > <= >=
    unit_ok: bool = True
    plausible: bool = True
    range_id: int | None = None
    range_text: str = Field(default="", max_length=100)  # the range applied, as shown to the validator
    age_days: int | None = None
    delta_previous_id: int | None = None
    delta_change: float | None = None
    delta_ok: bool | None = None  # None = no delta check (no rule or no previous result)
    rules: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))  # JSON list
    reasons: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class CriticalNotification(SQLModel, table=True):
    """A critical result phoned (or otherwise told) to a clinician, with read-back."""

    __tablename__ = "critical_notification"

    id: int | None = Field(default=None, primary_key=True)
    result_id: int = Field(foreign_key="result.id", index=True)
    notified: str = Field(max_length=200)  # who was told
    method: str = Field(max_length=40)  # phone | in_person | sms | emr_message | other
    read_back: bool = False
    notified_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    recorded_by: str = Field(max_length=64)
    comment: str = Field(default="", max_length=400)


class CalculatedInput(SQLModel, table=True):
    """The results a calculated result (eGFR, LDL) was computed from."""

    __tablename__ = "calculated_input"

    result_id: int = Field(primary_key=True, foreign_key="result.id")
    input_result_id: int = Field(primary_key=True, foreign_key="result.id")
    role: str = Field(max_length=32)  # the input's test code in the formula
