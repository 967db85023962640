"""Westgard multirule engine (reference implementation, run by run).

This module is the readable, detailed engine: :func:`evaluate_new_run` decides one new run from a compact
history (what the QC service calls on each arriving run), and :func:`evaluate_runs` folds it over a whole
series.  :mod:`qc.vectorized` is the numpy engine with the same decisions for large batches; the tests check
that both agree.  The semantics (project decisions, STANDARDS.md "Westgard QC") are spelled out in
qc/README.md; in short:

* z = (value − mean)/SD exactly, "beyond k SD" strict (:mod:`qc.exact`);
* 1_2s, 1_3s, R_4s look at the current run only (R_4s never across runs);
* the other rules look at one material across its consecutive observations (a run where the material is
  missing is skipped, not a break), and - for runs with at least two materials - at all materials across
  consecutive whole runs: the window is the most recent runs holding at least N observations, observations
  of one run being simultaneous (all observations of the newer runs, and enough of the oldest run);
* 7_T (trend) looks at one material only; a value exactly on the mean breaks x-rule streaks;
* a rejected run restarts the across-run history (``RuleSet.reset_on_reject``); a new lot restarts the
  history of that material and the across-materials history.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from qc.exact import band, to_decimal, z_fraction
from qc.model import (
    DEFAULT_RULES,
    MAX_WINDOW,
    RULE_SPECS,
    Decision,
    QcInputError,
    QcObservation,
    RuleSet,
    RuleSpec,
    RunDecision,
    Scope,
    Severity,
    Violation,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_RULES",
    "MaterialHistory",
    "QcHistory",
    "RuleSet",
    "RunDecision",
    "Violation",
    "evaluate_new_run",
    "evaluate_runs",
    "history_from_runs",
]

ObsId = int | str


@dataclass(frozen=True, slots=True)
class ObsState:
    """What the engine keeps of an observation: its id, material, exact z band and (for 7_T) exact z."""

    oid: ObsId
    material: str
    band: int
    z: Fraction | None


@dataclass(frozen=True, slots=True)
class MaterialHistory:
    """Current lot of a material and its observations since the last reset (at most 12)."""

    lot: str
    obs: tuple[ObsState, ...] = ()


@dataclass(frozen=True, slots=True)
class QcHistory:
    """Across-run state of one analyte (on one instrument): immutable, replaced after each run.

    ``runs`` holds the runs since the last across-materials reset (at most 12), ``materials`` the lot and
    recent observations of each material; ``next_index`` numbers observations that carry no ``obs_id``.
    """

    analyte: str = ""
    materials: dict[str, MaterialHistory] = field(default_factory=dict)
    runs: tuple[tuple[ObsState, ...], ...] = ()
    next_index: int = 0
    last_run: str | None = None


def _state(q: QcObservation, oid: ObsId, want_z: bool, where: str) -> ObsState:
    if q.value is None or q.mean is None or q.sd is None:
        raise QcInputError(f"{where}: value, target mean and SD are required")
    v = to_decimal(q.value, what=f"{where}: value")
    m = to_decimal(q.mean, what=f"{where}: target mean")
    s = to_decimal(q.sd, what=f"{where}: target SD")
    if s <= 0:
        raise QcInputError(f"{where}: target SD must be > 0, got {q.sd!r}")
    return ObsState(oid, q.material, band(v, m, s), z_fraction(v, m, s) if want_z else None)


class _Collector:
    """Gathers violations, merging the same rule/scope/material fired by duplicate observations."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.found: dict[tuple[str, Scope, str | None], list[ObsId]] = {}

    def add(self, rule: str, scope: Scope, involved: Iterable[ObsState], material: str | None = None) -> None:
        ids = self.found.setdefault((rule, scope, material), [])
        for o in involved:
            if o.oid not in ids:
                ids.append(o.oid)

    def violations(self) -> tuple[Violation, ...]:
        return tuple(
            Violation(rule, scope, self.rules.severity(rule), tuple(ids), material)
            for (rule, scope, material), ids in sorted(
                self.found.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")
            )
        )


def _within_run(spec: RuleSpec, run: Sequence[ObsState], out: _Collector) -> None:
    """1_2s / 1_3s: any control beyond the limit; R_4s: one > +2 SD and another < −2 SD in this run."""
    if spec.kind == "single":
        hits = [o for o in run if abs(o.band) >= spec.band]
        if hits:
            out.add(spec.name, Scope.WITHIN_RUN, hits)
    elif spec.kind == "range":
        high = [o for o in run if o.band >= 3]
        low = [o for o in run if o.band <= -3]
        if high and low:
            out.add(spec.name, Scope.WITHIN_RUN, high + low)


def _within_material(spec: RuleSpec, stream: Sequence[ObsState], out: _Collector) -> None:
    """Rule over one material's consecutive observations, ending with the newest one."""
    cur = stream[-1]
    if spec.kind == "streak":
        if len(stream) >= spec.n:
            window = stream[-spec.n :]
            for side in (1, -1):
                if all(o.band * side >= spec.band for o in window):
                    out.add(spec.name, Scope.WITHIN_MATERIAL, window, cur.material)
    elif spec.kind == "two_of_three":
        if abs(cur.band) >= 3:
            side = 1 if cur.band > 0 else -1
            same = [o for o in stream[-3:-1] if o.band * side >= 3]
            if same:
                out.add(spec.name, Scope.WITHIN_MATERIAL, [*same, cur], cur.material)
    elif spec.kind == "trend" and len(stream) >= spec.n:
        window = stream[-spec.n :]
        zs = [o.z for o in window]
        pairs = list(itertools.pairwise(zs))
        if all(a < b for a, b in pairs) or all(a > b for a, b in pairs):  # type: ignore[operator]
            out.add(spec.name, Scope.WITHIN_MATERIAL, window, cur.material)


def _across_materials(spec: RuleSpec, runs: Sequence[Sequence[ObsState]], out: _Collector) -> None:
    """Rule over all materials across consecutive whole runs (run-aligned window), ending with this run."""
    total = 0
    k = 0
    for k, run in enumerate(reversed(runs)):  # noqa: B007 - k is used after the loop
        total += len(run)
        if total >= spec.n:
            break
    complete = total >= spec.n
    window = runs[len(runs) - 1 - k :]
    current = runs[-1]
    for side in (1, -1):
        if spec.kind == "streak":
            if not complete:
                return
            oldest, newer = window[0], window[1:]
            sat_old = [o for o in oldest if o.band * side >= spec.band]
            need = spec.n - sum(len(r) for r in newer)
            newer_ok = all(o.band * side >= spec.band for r in newer for o in r)
            if newer_ok and len(sat_old) >= need:
                out.add(spec.name, Scope.ACROSS_MATERIALS, [*sat_old, *(o for r in newer for o in r)])
        elif spec.kind == "two_of_three":
            hits_now = [o for o in current if o.band * side >= 3]
            hits_before = [o for r in window[:-1] for o in r if o.band * side >= 3]
            if len(hits_now) >= 2 or (hits_now and hits_before):
                out.add(spec.name, Scope.ACROSS_MATERIALS, [*hits_before, *hits_now])


def evaluate_new_run(
    history: QcHistory,
    new_run: Sequence[QcObservation],
    rules: RuleSet = DEFAULT_RULES,
) -> tuple[RunDecision, QcHistory]:
    """Decide one new QC run of one analyte given its history; return the decision and the new history.

    ``new_run`` holds the run's observations (same run id, same analyte, one or more materials).  The history
    is not modified; keep the returned one for the next run.  Cost: well under 1 ms for a run of 2-3 levels.
    """
    if not new_run:
        raise QcInputError("a QC run needs at least one observation")
    run_id = new_run[0].run
    analyte = new_run[0].analyte
    for q in new_run:
        if q.run != run_id or q.analyte != analyte:
            raise QcInputError(
                f"observations of one run must share run id and analyte: {run_id!r}/{analyte!r} vs "
                f"{q.run!r}/{q.analyte!r}"
            )
    if history.last_run is not None and history.analyte != analyte:
        raise QcInputError(f"history is for analyte {history.analyte!r}, the run is for {analyte!r}")
    if history.last_run is not None and history.last_run == run_id:
        raise QcInputError(f"run {run_id!r} was already evaluated")
    active = rules.active
    want_z = "7_T" in active
    obs = [
        _state(q, q.obs_id if q.obs_id is not None else history.next_index + i, want_z, f"run {run_id!r}")
        for i, q in enumerate(new_run)
    ]

    lots = {m: mh.lot for m, mh in history.materials.items()}
    streams = {m: list(mh.obs) for m, mh in history.materials.items()}
    runs = list(history.runs)
    out = _Collector(rules)
    specs = [RULE_SPECS[name] for name in sorted(active)]
    for spec in specs:
        if Scope.WITHIN_RUN in spec.scopes:
            _within_run(spec, obs, out)

    lot_changed = False
    material_specs = [s for s in specs if Scope.WITHIN_MATERIAL in s.scopes]
    for q, o in zip(new_run, obs, strict=True):
        if lots.get(q.material) != q.lot:  # new material, or a new lot: that material starts afresh
            lot_changed = lot_changed or q.material in lots
            lots[q.material] = q.lot
            streams[q.material] = []
        stream = streams[q.material]
        stream.append(o)
        for spec in material_specs:
            _within_material(spec, stream, out)
    if lot_changed:  # a new lot also restarts the across-materials history
        runs = []

    runs.append(tuple(obs))
    if len({o.material for o in obs}) >= 2:
        for spec in specs:
            if Scope.ACROSS_MATERIALS in spec.scopes:
                _across_materials(spec, runs, out)

    violations = out.violations()
    if any(v.severity is Severity.REJECT for v in violations):
        decision = Decision.REJECT
    elif violations:
        decision = Decision.WARNING
    else:
        decision = Decision.ACCEPT

    if decision is Decision.REJECT and rules.reset_on_reject:
        new_materials = {m: MaterialHistory(lot) for m, lot in lots.items()}
        new_runs: tuple[tuple[ObsState, ...], ...] = ()
    else:
        new_materials = {m: MaterialHistory(lots[m], tuple(s[-MAX_WINDOW:])) for m, s in streams.items()}
        new_runs = tuple(runs[-MAX_WINDOW:])
    new_history = QcHistory(analyte, new_materials, new_runs, history.next_index + len(obs), run_id)
    return (
        RunDecision(run_id, decision, violations, analyte, tuple(o.oid for o in obs)),
        new_history,
    )


def _group_runs(observations: Sequence[QcObservation]) -> list[list[QcObservation]]:
    """Group observations into runs (order of first appearance); a run reappearing later is an error."""
    runs: list[list[QcObservation]] = []
    current: dict[str, tuple[str, list[QcObservation]]] = {}  # analyte -> (run id, its list)
    closed: set[tuple[str, str]] = set()
    for i, q in enumerate(observations):
        key = (q.analyte, q.run)
        cur = current.get(q.analyte)
        if cur is not None and cur[0] == q.run:
            cur[1].append(q)
            continue
        if key in closed:
            raise QcInputError(
                f"observation {i}: run {q.run!r} reappears after another run; runs must be in order"
            )
        if cur is not None:
            closed.add((q.analyte, cur[0]))
        lst = [q]
        current[q.analyte] = (q.run, lst)
        runs.append(lst)
    return runs


def _from_frame(frame: pd.DataFrame) -> list[QcObservation]:
    required = ["run", "material", "lot", "value", "mean", "sd"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise QcInputError(f"missing column(s): {', '.join(missing)}")
    analytes = frame["analyte"].astype(str).tolist() if "analyte" in frame.columns else [""] * len(frame)
    return [
        QcObservation(str(r), str(m), str(lot), v, mu, s, a, i)
        for i, (r, m, lot, v, mu, s, a) in enumerate(
            zip(
                frame["run"].tolist(),
                frame["material"].tolist(),
                frame["lot"].tolist(),
                frame["value"].tolist(),
                frame["mean"].tolist(),
                frame["sd"].tolist(),
                analytes,
                strict=True,
            )
        )
    ]


def evaluate_runs(
    observations: pd.DataFrame | Sequence[QcObservation],
    rules: RuleSet = DEFAULT_RULES,
) -> list[RunDecision]:
    """Evaluate a QC series run by run; one :class:`RunDecision` per run, in order of first appearance.

    ``observations`` is a list of :class:`QcObservation` or a DataFrame with columns
    ``run, material, lot, value, mean, sd`` (optional ``analyte``: analytes are independent series).
    Observations without ``obs_id`` are identified by their 0-based position in the input.
    """
    if not isinstance(observations, Sequence):
        observations = _from_frame(observations)
    obs = [q if q.obs_id is not None else _with_id(q, i) for i, q in enumerate(observations)]
    histories: dict[str, QcHistory] = {}
    decisions: list[RunDecision] = []
    for run in _group_runs(obs):
        analyte = run[0].analyte
        decision, histories[analyte] = evaluate_new_run(
            histories.get(analyte, QcHistory(analyte)), run, rules
        )
        decisions.append(decision)
    return decisions


def history_from_runs(
    runs: Iterable[Sequence[QcObservation]], rules: RuleSet = DEFAULT_RULES, analyte: str = ""
) -> QcHistory:
    """Rebuild the history of one analyte from its past runs (oldest first), e.g. after a restart."""
    history = QcHistory(analyte)
    for run in runs:
        _, history = evaluate_new_run(history, run, rules)
    return history


def _with_id(q: QcObservation, i: int) -> QcObservation:
    return QcObservation(q.run, q.material, q.lot, q.value, q.mean, q.sd, q.analyte, i)
