"""QC configuration: control materials, lots, targets (manufacturer or lab-established) and rule sets.

Every change is audited in the caller's transaction (``lis.services.audit``). Rule sets are chosen per
analyte × instrument (STANDARDS.md "Westgard QC"); :func:`propose_rule_set` derives a *proposal* from the
sigma metric (``qc.sigma``) that the laboratory reviews and confirms with :func:`set_rule_set`.
Without a stored rule set, an analyte is evaluated with the project default (``qc.model.DEFAULT_RULES``:
1_2s, 1_3s, 2_2s, R_4s, 4_1s, 10_x with 1_2s and 7_T as warnings) and a 24 h QC interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from lis.models import ControlLot, ControlMaterial, QcRuleSet, QcRunObservation, QcTarget, utcnow
from lis.services import audit
from lis.services.qc_holds import DEFAULT_INTERVAL
from qc.errors import QcConflict, QcNotFound
from qc.exact import to_decimal
from qc.model import DEFAULT_RULES, Number, QcInputError, RuleSet, parse_rule_names
from qc.sigma import RuleProposal, propose_rules, sigma_metric
from qc.stats import DEFAULT_TARGET_RUNS, summarize

MIN_OBSERVED_FOR_CV = 20

TARGET_SOURCES = ("manufacturer", "lab")


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise QcConflict(f"{what} already exists") from exc


def create_material(session: Session, actor: str, *, code: str, name: str, level: str = "",
                    manufacturer: str = "") -> ControlMaterial:
    """A control material; ``code`` is what the analyser sends (material field, else the QC specimen id)."""
    code = code.strip()
    if not code or not name.strip():
        raise QcInputError("a control material needs a code (as the analyser sends it) and a name")
    if session.exec(select(ControlMaterial).where(ControlMaterial.code == code)).first() is not None:
        raise QcConflict(f"control material {code!r} already exists")
    material = ControlMaterial(code=code, name=name.strip(), level=level.strip(), manufacturer=manufacturer.strip())
    session.add(material)
    _flush(session, f"control material {code!r}")
    audit.record(session, actor, "qc.material.create", "qc_material", material.id or 0,
                 after=material.model_dump(mode="json"))
    return material


def create_lot(session: Session, actor: str, *, material_id: int, lot_number: str, expires_on: date | None = None,
               in_use: bool = True) -> ControlLot:
    """A lot of a material. The newest lot in use is the one measured when the analyser sends no lot."""
    if session.get(ControlMaterial, material_id) is None:
        raise QcNotFound(f"control material {material_id} does not exist")
    lot_number = lot_number.strip()
    if not lot_number:
        raise QcInputError("a lot needs a lot number")
    if session.exec(select(ControlLot).where(ControlLot.material_id == material_id,
                                             ControlLot.lot_number == lot_number)).first() is not None:
        raise QcConflict(f"lot {lot_number!r} of material {material_id} already exists")
    lot = ControlLot(material_id=material_id, lot_number=lot_number, expires_on=expires_on, in_use=in_use)
    session.add(lot)
    _flush(session, f"lot {lot_number!r}")
    audit.record(session, actor, "qc.lot.create", "qc_lot", lot.id or 0, after=lot.model_dump(mode="json"))
    return lot


def update_lot(session: Session, actor: str, lot_id: int, *, in_use: bool | None = None,
               expires_on: date | None = None) -> ControlLot:
    """Put a lot in or out of use, or correct its expiry date."""
    lot = session.get(ControlLot, lot_id)
    if lot is None:
        raise QcNotFound(f"lot {lot_id} does not exist")
    before = lot.model_dump(mode="json")
    if in_use is not None:
        lot.in_use = in_use
    if expires_on is not None:
        lot.expires_on = expires_on
    session.add(lot)
    audit.record(session, actor, "qc.lot.update", "qc_lot", lot_id, before=before, after=lot.model_dump(mode="json"))
    return lot


def _positive_sd(sd: Number) -> Decimal:
    value = to_decimal(sd, what="target SD")
    if value <= 0:
        raise QcInputError(f"target SD must be > 0, got {sd!r}")
    return value


def create_target(
    session: Session, actor: str, *, lot_id: int, instrument: str, test_code: str, mean: Number | None = None,
    sd: Number | None = None, unit: str = "", source: str = "manufacturer", n_establish: int = DEFAULT_TARGET_RUNS,
    tea_pct: float | None = None, bias_pct: float | None = None,
) -> QcTarget:
    """Target of ``test_code`` on ``instrument`` for a lot.

    ``source="manufacturer"`` needs mean and SD (SD > 0) and is active at once. ``source="lab"`` without
    mean/SD starts in state ``establishing``: the QC service collects ``n_establish`` runs (default 20),
    then computes mean/SD with :func:`qc.stats.establish_target` and activates it; with mean/SD given it
    is an already established lab target.
    """
    if source not in TARGET_SOURCES:
        raise QcInputError(f"target source must be one of {', '.join(TARGET_SOURCES)}, got {source!r}")
    if session.get(ControlLot, lot_id) is None:
        raise QcNotFound(f"lot {lot_id} does not exist")
    if not instrument.strip() or not test_code.strip():
        raise QcInputError("a target needs an instrument and a test code")
    if n_establish < 2:
        raise QcInputError("a lab target needs at least 2 runs to be established")
    if (mean is None) != (sd is None):
        raise QcInputError("give both target mean and SD, or neither (lab target to establish)")
    if mean is None and source == "manufacturer":
        raise QcInputError("a manufacturer target needs mean and SD")
    target = QcTarget(lot_id=lot_id, instrument=instrument.strip(), test_code=test_code.strip(), unit=unit,
                      source=source, n_establish=n_establish, tea_pct=tea_pct, bias_pct=bias_pct)
    if mean is not None and sd is not None:
        target.mean = str(to_decimal(mean, what="target mean"))
        target.sd = str(_positive_sd(sd))
        target.state = "active"
    else:
        target.state = "establishing"
    if session.exec(select(QcTarget).where(QcTarget.lot_id == lot_id, QcTarget.instrument == target.instrument,
                                           QcTarget.test_code == target.test_code)).first() is not None:
        raise QcConflict(f"a target for {target.test_code} on {target.instrument} and lot {lot_id} already exists")
    session.add(target)
    _flush(session, "target")
    audit.record(session, actor, "qc.target.create", "qc_target", target.id or 0,
                 after=target.model_dump(mode="json"))
    return target


def update_target(
    session: Session, actor: str, target_id: int, *, mean: Number | None = None, sd: Number | None = None,
    unit: str | None = None, tea_pct: float | None = None, bias_pct: float | None = None,
) -> QcTarget:
    """Correct a target; giving mean and SD to an establishing target activates it."""
    target = session.get(QcTarget, target_id)
    if target is None:
        raise QcNotFound(f"target {target_id} does not exist")
    before = target.model_dump(mode="json")
    if mean is not None:
        target.mean = str(to_decimal(mean, what="target mean"))
    if sd is not None:
        target.sd = str(_positive_sd(sd))
    if target.state == "establishing" and target.mean is not None and target.sd is not None:
        target.state = "active"
        target.established_at = utcnow()
    if unit is not None:
        target.unit = unit
    if tea_pct is not None:
        target.tea_pct = tea_pct
    if bias_pct is not None:
        target.bias_pct = bias_pct
    session.add(target)
    audit.record(session, actor, "qc.target.update", "qc_target", target_id, before=before,
                 after=target.model_dump(mode="json"))
    return target


@dataclass(frozen=True, slots=True)
class EffectiveRules:
    """The rule set in force for an analyte on an instrument (stored, or the project default)."""

    rules: RuleSet
    max_interval_hours: float
    stored: QcRuleSet | None

    def describe(self) -> str:
        """E.g. ``reject 1_3s,2_2s; warn 1_2s; reset`` (stored on each run)."""
        reset = "reset" if self.rules.reset_on_reject else "no reset"
        return f"reject {','.join(sorted(self.rules.reject))}; warn {','.join(sorted(self.rules.warn))}; {reset}"


def rule_set_of(row: QcRuleSet | None) -> EffectiveRules:
    """Engine rule set of a stored row (None: the project default)."""
    if row is None:
        return EffectiveRules(DEFAULT_RULES, DEFAULT_INTERVAL.total_seconds() / 3600, None)
    warn = _names(row.warning_rules)
    rules = RuleSet.from_names(_names(row.rejection_rules) + warn, warn, reset_on_reject=row.reset_on_reject)
    return EffectiveRules(rules, row.max_interval_hours, row)


def _names(text: str) -> tuple[str, ...]:
    return tuple(n for n in (p.strip() for p in text.split(",")) if n)


def effective_rules(session: Session, instrument: str, test_code: str) -> EffectiveRules:
    """Stored rule set of the pair, else the default."""
    row = session.exec(select(QcRuleSet).where(QcRuleSet.instrument == instrument,
                                               QcRuleSet.test_code == test_code)).first()
    return rule_set_of(row)


def set_rule_set(
    session: Session, actor: str, *, instrument: str, test_code: str, rejection_rules: list[str],
    warning_rules: list[str], reset_on_reject: bool = True, max_interval_hours: float = 24.0,
    source: str = "manual",
) -> QcRuleSet:
    """Create or replace the rule set of an analyte on an instrument (validated by the engine)."""
    if not instrument.strip() or not test_code.strip():
        raise QcInputError("a rule set needs an instrument and a test code")
    if not 0 < max_interval_hours <= 24 * 31:
        raise QcInputError(f"QC interval must be between 0 and 744 hours, got {max_interval_hours}")
    warn = parse_rule_names(warning_rules, what="warning rule")
    reject = tuple(r for r in parse_rule_names(rejection_rules) if r not in warn)
    if not reject:
        raise QcInputError("a rule set needs at least one rejection rule")
    RuleSet.from_names(reject + warn, warn, reset_on_reject=reset_on_reject)
    row = session.exec(select(QcRuleSet).where(QcRuleSet.instrument == instrument,
                                               QcRuleSet.test_code == test_code)).first()
    before = row.model_dump(mode="json") if row is not None else None
    if row is None:
        row = QcRuleSet(instrument=instrument, test_code=test_code, rejection_rules="")
    row.rejection_rules = ",".join(reject)
    row.warning_rules = ",".join(warn)
    row.reset_on_reject = reset_on_reject
    row.max_interval_hours = max_interval_hours
    row.source = source[:40]
    row.updated_by = actor
    row.updated_at = utcnow()
    session.add(row)
    _flush(session, f"rule set for {test_code} on {instrument}")
    audit.record(session, actor, "qc.rule_set.set", "qc_rule_set", row.id or 0, before=before,
                 after=row.model_dump(mode="json"))
    return row


@dataclass(frozen=True, slots=True)
class SigmaProposal:
    """A rule set PROPOSED from the sigma metric; the lab confirms it with :func:`set_rule_set`."""

    instrument: str
    test_code: str
    tea_pct: float
    bias_pct: float
    cv_pct: float
    proposal: RuleProposal
    cv_source: str = "given"
    label: str = "proposal"

    def as_dict(self) -> dict[str, object]:
        p = self.proposal
        return {"label": self.label, "confirmed": p.confirmed, "note": p.note, "instrument": self.instrument,
                "test_code": self.test_code, "sigma": round(p.sigma, 3), "band": p.band, "levels": p.levels,
                "tea_pct": self.tea_pct, "bias_pct": self.bias_pct, "cv_pct": round(self.cv_pct, 4),
                "cv_source": self.cv_source,
                "rejection_rules": list(p.rules), "alternatives": list(p.alternatives),
                "warning_rules": ["1_2s", "7_T"]}


def propose_rule_set(session: Session, instrument: str, test_code: str, *, levels: int | None = None,
                     tea_pct: float | None = None, bias_pct: float | None = None,
                     cv_pct: float | None = None) -> SigmaProposal:
    """Sigma = (TEa − |bias|)/CV from the active targets of the lots in use (worst CV and bias, i.e. the
    lowest sigma), unless given. CV: observed over the last 100 values of a target when there are at least
    20, else the target's SD/mean. ``levels`` defaults to the number of materials with active targets."""
    targets = session.exec(
        select(QcTarget, ControlLot).join(ControlLot, col(ControlLot.id) == QcTarget.lot_id)
        .where(QcTarget.instrument == instrument, QcTarget.test_code == test_code, QcTarget.state == "active",
               col(ControlLot.in_use).is_(True))
    ).all()
    cv_source = "given"
    if cv_pct is None:
        cvs = [cv for cv in (_cv_of(session, t) for t, _ in targets) if cv is not None]
        if not cvs:
            raise QcInputError(f"no active target for {test_code} on {instrument}: give cv_pct")
        cv_pct, cv_source = max(cvs)
    if tea_pct is None:
        teas = [t.tea_pct for t, _ in targets if t.tea_pct is not None]
        if not teas:
            raise QcInputError(f"no TEa recorded on the targets of {test_code} on {instrument}: give tea_pct")
        tea_pct = min(teas)
    if bias_pct is None:
        bias_pct = max((abs(t.bias_pct) for t, _ in targets if t.bias_pct is not None), default=0.0)
    if levels is None:
        levels = 3 if len({lot.material_id for _, lot in targets}) >= 3 else 2
    sigma = sigma_metric(tea_pct, bias_pct, cv_pct)
    return SigmaProposal(instrument, test_code, tea_pct, bias_pct, cv_pct, propose_rules(sigma, levels), cv_source)


def _cv_of(session: Session, target: QcTarget) -> tuple[float, str] | None:
    """CV % of a target: observed over its last 100 evaluated values when there are at least
    ``MIN_OBSERVED_FOR_CV`` (the lab's own imprecision), else the target's SD/mean."""
    values = session.exec(select(QcRunObservation.value).where(
        QcRunObservation.target_id == target.id, QcRunObservation.status == "evaluated")
        .order_by(col(QcRunObservation.id).desc()).limit(100)).all()
    if len(values) >= MIN_OBSERVED_FOR_CV:
        observed = summarize(values)
        if observed.cv_pct is not None and observed.cv_pct > 0:
            return float(observed.cv_pct), f"observed (n={observed.n})"
    if target.sd is None or target.mean is None or Decimal(target.mean) == 0:
        return None
    return float(Decimal(target.sd) / abs(Decimal(target.mean)) * 100), "target SD"


