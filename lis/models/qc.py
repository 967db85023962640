"""Quality control tables (issue 5): control materials and lots, targets, rule sets, runs, violations, holds.

The Westgard engine and the QC service live in ``qc/`` (which imports ``lis``); the tables live here so the
schema stays one, and so the release workflow can ask "is this patient result held by QC?" through
``lis.services.qc_holds`` without importing ``qc``.

Numbers that feed the exact Westgard limits (target mean and SD, control values) are kept as decimal text:
z = (value − mean)/SD is computed exactly (STANDARDS.md "Westgard QC"), a float column would round them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Column, Field, SQLModel, Text

from lis.models.types import UTCDateTime, utcnow


class QcDecision:
    """Decision stored on a QC run. ``establishing``: only observations collected for a lab target."""

    ACCEPT = "accept"
    WARNING = "warning"
    REJECT = "reject"
    CANNOT_EVALUATE = "cannot_evaluate"
    ESTABLISHING = "establishing"
    ACCEPTING = (ACCEPT, WARNING)  # decisions after which patient results may be released
    EVALUATED = (ACCEPT, WARNING, REJECT)  # decisions that belong to the Westgard across-run history


class QcHoldReason:
    """Why release is held (STANDARDS.md: a rejected run holds; no QC in the interval holds; fail closed)."""

    REJECTED_RUN = "rejected_run"
    NO_QC_IN_INTERVAL = "no_qc_in_interval"
    CANNOT_EVALUATE = "cannot_evaluate"
    ALL = (REJECTED_RUN, CANNOT_EVALUATE, NO_QC_IN_INTERVAL)  # order = precedence when several apply


class QcHoldState:
    """Hold life cycle: open → (corrective action) awaiting_run → (next accepted run) lifted.

    A ``no_qc_in_interval`` hold needs no corrective action: the next accepted run lifts it.
    """

    OPEN = "open"
    AWAITING_RUN = "awaiting_run"
    LIFTED = "lifted"


class ControlMaterial(SQLModel, table=True):
    """A control material (one level). ``code`` is what the analyser sends to name it: the profile's
    control-material field when it has one, else the QC specimen id (generic ASTM: O-3, e.g. ``QC-1``)."""

    __tablename__ = "qc_material"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=100, unique=True)
    name: str = Field(max_length=200)
    level: str = Field(default="", max_length=20)
    manufacturer: str = Field(default="", max_length=200)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ControlLot(SQLModel, table=True):
    """A lot of a control material. When the analyser sends no lot, the newest lot in use that has not
    expired is the one being measured."""

    __tablename__ = "qc_lot"
    __table_args__ = (UniqueConstraint("material_id", "lot_number", name="uq_qc_lot"),)

    id: int | None = Field(default=None, primary_key=True)
    material_id: int = Field(foreign_key="qc_material.id", index=True)
    lot_number: str = Field(max_length=64)
    expires_on: date | None = None
    in_use: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class QcTarget(SQLModel, table=True):
    """Target mean/SD of one analyte on one instrument for one control lot.

    ``source`` manufacturer | lab; ``state`` establishing (lab target collecting ``n_establish`` runs) |
    active. ``mean``/``sd`` are decimal text (None while establishing). ``tea_pct``/``bias_pct`` feed the
    sigma metric.
    """

    __tablename__ = "qc_target"
    __table_args__ = (UniqueConstraint("lot_id", "instrument", "test_code", name="uq_qc_target"),
                      Index("ix_qc_target_pair", "instrument", "test_code"))

    id: int | None = Field(default=None, primary_key=True)
    lot_id: int = Field(foreign_key="qc_lot.id", index=True)
    instrument: str = Field(max_length=64)
    test_code: str = Field(max_length=32)
    mean: str | None = Field(default=None, max_length=64)
    sd: str | None = Field(default=None, max_length=64)
    unit: str = Field(default="", max_length=40)
    source: str = Field(default="manufacturer", max_length=20)
    state: str = Field(default="active", max_length=20)
    n_establish: int = 20
    tea_pct: float | None = None
    bias_pct: float | None = None
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    established_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class QcRuleSet(SQLModel, table=True):
    """Westgard rule set of one analyte on one instrument (comma-separated rule names), and the maximum
    interval between accepted QC runs before release is held."""

    __tablename__ = "qc_rule_set"
    __table_args__ = (UniqueConstraint("instrument", "test_code", name="uq_qc_rule_set"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(max_length=64)
    test_code: str = Field(max_length=32)
    rejection_rules: str = Field(max_length=200)
    warning_rules: str = Field(default="", max_length=200)
    reset_on_reject: bool = True
    max_interval_hours: float = 24.0
    source: str = Field(default="manual", max_length=40)  # manual | sigma proposal
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class QcRun(SQLModel, table=True):
    """A QC run of one analyte on one instrument: its observations, decision and when it was decided.

    ``run_key`` is the analyser's or technician's run id, else generated. ``run_at`` is the time of the
    run's first observation (analyser clock, like the patient results it covers); ``opened_at`` and
    ``evaluated_at`` are server time. ``status`` open | evaluated.
    """

    __tablename__ = "qc_run"
    __table_args__ = (UniqueConstraint("instrument", "test_code", "run_key", name="uq_qc_run_key"),
                      Index("ix_qc_run_pair_decision", "instrument", "test_code", "decision", "run_at"))

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(max_length=64)
    test_code: str = Field(max_length=32)
    run_key: str = Field(max_length=100)
    run_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    opened_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="open", max_length=20)
    decision: str | None = Field(default=None, max_length=20)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    rules: str = Field(default="", max_length=400)
    evaluated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class QcRunObservation(SQLModel, table=True):
    """Membership of a QC observation (``result`` row with ``is_qc``) in a run, with what it was judged
    against: material, lot, target mean/SD (decimal text) and z. ``status`` evaluated | establishing |
    flagged; ``flag`` says what is wrong with a flagged one (non-numeric value, unknown material...)."""

    __tablename__ = "qc_run_observation"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="qc_run.id", index=True)
    result_id: int = Field(foreign_key="result.id", unique=True)
    material_id: int | None = Field(default=None, foreign_key="qc_material.id", index=True)
    lot_id: int | None = Field(default=None, foreign_key="qc_lot.id", index=True)
    target_id: int | None = Field(default=None, foreign_key="qc_target.id", index=True)
    material_key: str = Field(default="", max_length=100)
    lot_number: str = Field(default="", max_length=64)
    value: str = Field(default="", max_length=100)
    target_mean: str | None = Field(default=None, max_length=64)
    target_sd: str | None = Field(default=None, max_length=64)
    z: float | None = None
    observed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="evaluated", max_length=20)
    flag: str = Field(default="", max_length=200)


class QcViolation(SQLModel, table=True):
    """A Westgard rule that fired in a run: rule, scope, severity, material and the result ids involved
    (JSON list; they may belong to earlier runs of the same analyte)."""

    __tablename__ = "qc_violation"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="qc_run.id", index=True)
    rule: str = Field(max_length=20)
    scope: str = Field(max_length=40)
    severity: str = Field(max_length=10)
    material_id: int | None = Field(default=None, foreign_key="qc_material.id")
    result_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))


class QcHold(SQLModel, table=True):
    """Release hold on every patient result of ``test_code`` on ``instrument`` observed at or after
    ``since`` (None: all of them) while not lifted (see ``lis.services.qc_holds``)."""

    __tablename__ = "qc_hold"
    __table_args__ = (Index("ix_qc_hold_pair_state", "instrument", "test_code", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(max_length=64)
    test_code: str = Field(max_length=32)
    reason: str = Field(max_length=40)
    state: str = Field(default=QcHoldState.OPEN, max_length=20)
    since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    run_id: int | None = Field(default=None, foreign_key="qc_run.id")
    corrective_action: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    corrective_action_id: int | None = None
    lifted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    lifted_by: str = Field(default="", max_length=64)
    lifted_by_run_id: int | None = Field(default=None, foreign_key="qc_run.id")


class QcCorrectiveAction(SQLModel, table=True):
    """What a validator did about a QC failure (recalibration, new reagent, rerun of patient samples...)."""

    __tablename__ = "qc_corrective_action"

    id: int | None = Field(default=None, primary_key=True)
    hold_id: int | None = Field(default=None, foreign_key="qc_hold.id", index=True)
    instrument: str = Field(max_length=64)
    test_code: str = Field(max_length=32)
    action: str = Field(sa_column=Column(Text, nullable=False))
    recorded_by: str = Field(max_length=64)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
