"""Vectorised Westgard multirule engine (numpy) for batches: same decisions as :mod:`qc.rules`.

Used by the batch evaluator (``lis qc evaluate``) and the benchmark.  It returns, per run, the decision and
which rules fired (with scope); the run-by-run engine in :mod:`qc.rules` gives the observations involved.

How it works (semantics in qc/README.md):

* Exact limits with a float fast path: z bands are computed in float64 and every value whose |v − m| lies
  within 1e-12·(|v| + |m| + k·SD) of a limit k·SD (k = 1, 2, 3) is re-checked exactly in ``Decimal``
  (:func:`qc.exact.band`, floats read as the decimal they print as).  The side of the mean needs no check: the
  sign of a float subtraction is exact.  7_T comparisons of consecutive z are re-checked the same way when
  the float difference is within a relative 1e-9.
* Every across-run rule is a "window ending at this run": for each run it computes the start run of the
  most recent window that violates the rule, ignoring resets.  A rule fires at run r when its window starts
  at or after the run's epoch (first run after the last rejected run; lot changes and analyte starts are
  static epochs built into the streams).  Because a reset can only remove across-run violations, the
  rejected runs are found by one pass over the candidate runs (runs with any raw rejection), in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from qc.exact import band as exact_band
from qc.exact import compare_z, to_decimal
from qc.model import DEFAULT_RULES, RULE_SPECS, QcInputError, RuleSet, RuleSpec, Scope

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

DECISION_NAMES = ("accept", "warning", "reject")
_REL_TOL = 1e-12
_TREND_TOL = 1e-9


@dataclass(frozen=True)
class BatchResult:
    """Per-run result arrays of a vectorised evaluation (runs in input order of first appearance).

    ``decision`` codes: 0 accept, 1 warning, 2 reject.  ``fired[(rule, scope)]`` is a bool array per run.
    """

    run: npt.NDArray[np.object_]
    analyte: npt.NDArray[np.object_]
    decision: npt.NDArray[np.int8]
    fired: dict[tuple[str, Scope], BoolArray]

    def __len__(self) -> int:
        return len(self.decision)

    def rule_fired(self, rule: str) -> BoolArray:
        """Runs where ``rule`` fired in any scope."""
        out = np.zeros(len(self), dtype=bool)
        for (name, _scope), arr in self.fired.items():
            if name == rule:
                out |= arr
        return out

    def violations(self) -> list[list[str]]:
        """Sorted rule names fired per run."""
        names: list[set[str]] = [set() for _ in range(len(self))]
        for (name, _scope), arr in self.fired.items():
            for i in np.flatnonzero(arr).tolist():
                names[i].add(name)
        return [sorted(s) for s in names]


def _streak(cond: BoolArray, segstart: BoolArray | None = None) -> IntArray:
    """Length of the run of True ending at each position, not crossing segment starts."""
    idx = np.arange(len(cond), dtype=np.int64)
    mark = np.where(cond, -1, idx)
    if segstart is not None:
        sel = np.flatnonzero(segstart & cond)
        mark[sel] = sel - 1
    np.maximum.accumulate(mark, out=mark)
    return idx - mark


def _bands(v: FloatArray, m: FloatArray, s: FloatArray) -> npt.NDArray[np.int8]:
    d = v - m
    a = np.abs(d)
    level = (d != 0).astype(np.int8)
    near = np.zeros(len(v), dtype=bool)
    scale = np.abs(v) + np.abs(m)
    for k in (1.0, 2.0, 3.0):
        lim = k * s
        level += a > lim
        near |= np.abs(a - lim) <= _REL_TOL * (scale + lim)
    out = (np.sign(d).astype(np.int8) * level).astype(np.int8)
    for i in np.flatnonzero(near).tolist():
        out[i] = exact_band(to_decimal(float(v[i])), to_decimal(float(m[i])), to_decimal(float(s[i])))
    return out


def _trend_steps(
    v: FloatArray, m: FloatArray, s: FloatArray, newseg: BoolArray
) -> tuple[BoolArray, BoolArray]:
    """For each observation (stream order): is z strictly above / below the previous one of its segment."""
    z = (v - m) / s
    dz = np.empty_like(z)
    dz[0] = 0.0
    dz[1:] = z[1:] - z[:-1]
    tol = _TREND_TOL * (np.abs(z) + (np.abs(v) + np.abs(m)) / s)
    tol2 = np.empty_like(tol)
    tol2[0] = 0.0
    tol2[1:] = tol[1:] + tol[:-1]
    up = (dz > tol2) & ~newseg
    down = (dz < -tol2) & ~newseg
    for i in np.flatnonzero((np.abs(dz) <= tol2) & ~newseg).tolist():
        c = compare_z(
            to_decimal(float(v[i - 1])),
            to_decimal(float(m[i - 1])),
            to_decimal(float(s[i - 1])),
            to_decimal(float(v[i])),
            to_decimal(float(m[i])),
            to_decimal(float(s[i])),
        )
        up[i] = c > 0
        down[i] = c < 0
    return up, down


def _run_max(n_runs: int, run_of: IntArray, start: IntArray) -> IntArray:
    """Per run, the largest window start among its observations (-1 if none fired)."""
    out = np.full(n_runs, -1, dtype=np.int64)
    hit = np.flatnonzero(start >= 0)
    if len(hit):
        np.maximum.at(out, run_of[hit], start[hit])
    return out


@dataclass
class _Prepared:
    n_runs: int
    run_starts: IntArray
    cnt: IntArray
    band_p: npt.NDArray[np.int8]  # observation order (run-major)
    run_p: IntArray
    band_q: npt.NDArray[np.int8]  # stream order (analyte, material, run)
    run_q: IntArray
    segstart_q: BoolArray
    mixed: BoolArray  # run has >= 2 distinct materials
    pooled_epoch: IntArray  # first run the across-materials window may reach back to
    v_q: FloatArray
    m_q: FloatArray
    s_q: FloatArray
    cache: dict[tuple[object, ...], npt.NDArray[np.int64]] = field(default_factory=dict)

    def material_streak(self, band: int, side: int) -> IntArray:
        """Streak (stream order) of observations at or beyond ``band`` on ``side``; cached."""
        key = ("ms", band, side)
        if key not in self.cache:
            self.cache[key] = _streak(self.band_q * side >= band, self.segstart_q)
        return self.cache[key]

    def run_sat(self, band: int, side: int) -> tuple[IntArray, IntArray]:
        """Per run: count of observations at/beyond ``band`` on ``side``, and the all-satisfied streak."""
        key = ("rs", band, side)
        if key not in self.cache:
            sat = np.add.reduceat((self.band_p * side >= band).astype(np.int64), self.run_starts)
            self.cache[key] = sat
            self.cache[("ra", band, side)] = _streak(sat == self.cnt)
        return self.cache[key], self.cache[("ra", band, side)]

    def window_start(self, n: int) -> IntArray:
        """Per run: oldest run of the smallest run-aligned window holding >= n observations (-1: none).

        That is the run holding observation number C[r] − n (0-based, run-major order).
        """
        key = ("ws", n)
        if key not in self.cache:
            pos = self.cum - n
            self.cache[key] = np.where(pos >= 0, self.run_p[np.maximum(pos, 0)], -1)
        return self.cache[key]

    @property
    def cum(self) -> IntArray:
        if ("cum",) not in self.cache:
            self.cache[("cum",)] = np.cumsum(self.cnt)
        return self.cache[("cum",)]


def _prepare(
    analyte: IntArray,
    run: IntArray,
    material: IntArray,
    lot: IntArray,
    v: FloatArray,
    m: FloatArray,
    s: FloatArray,
) -> _Prepared:
    """Arrays in run-major order with run index ``run`` non-decreasing (0..R-1) within analyte blocks."""
    n = len(run)
    n_runs = int(run[-1]) + 1
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]]).astype(np.int64)
    cnt = np.diff(np.r_[starts, n]).astype(np.int64)
    band_p = _bands(v, m, s)
    nmat = int(material.max()) + 1
    key = analyte * nmat + material
    order = np.arange(n) if n > 1 and np.all(key[1:] >= key[:-1]) else np.argsort(key, kind="stable")
    key_q = key[order]
    lot_q = lot[order]
    newstream = np.r_[True, key_q[1:] != key_q[:-1]]
    lotchg = ~newstream & np.r_[False, lot_q[1:] != lot_q[:-1]]
    run_q = run[order]
    idx = np.arange(n_runs, dtype=np.int64)
    run_analyte = analyte[starts]
    new_analyte = np.r_[True, run_analyte[1:] != run_analyte[:-1]]
    epoch_mark = new_analyte.copy()
    epoch_mark[run_q[lotchg]] = True
    pooled_epoch = np.maximum.accumulate(np.where(epoch_mark, idx, 0))
    mixed = np.minimum.reduceat(material, starts) != np.maximum.reduceat(material, starts)
    return _Prepared(
        n_runs,
        starts,
        cnt,
        band_p,
        run,
        band_p[order],
        run_q,
        newstream | lotchg,
        mixed,
        pooled_epoch,
        v[order],
        m[order],
        s[order],
    )


def _material_starts(spec: RuleSpec, p: _Prepared, trend: tuple[BoolArray, BoolArray] | None) -> IntArray:
    """Across-runs-within-material: per run, start run of the latest violating window (-1: none)."""
    n = len(p.band_q)
    best = np.full(p.n_runs, -1, dtype=np.int64)
    for side in (1, -1):
        start = np.full(n, -1, dtype=np.int64)
        if spec.kind == "streak":
            length = p.material_streak(spec.band, side)
            pos = np.flatnonzero(length >= spec.n)
            start[pos] = p.run_q[pos - spec.n + 1]
        elif spec.kind == "trend":
            assert trend is not None
            steps = trend[0] if side == 1 else trend[1]
            length = _streak(steps)
            pos = np.flatnonzero(length >= spec.n - 1)
            start[pos] = p.run_q[pos - spec.n + 1]
        else:  # two_of_three: this one beyond 2 SD and one of the previous two on the same side
            hit = p.band_q * side >= 3
            prev1 = np.r_[False, hit[:-1] & ~p.segstart_q[1:]]
            prev2 = np.r_[False, False, hit[:-2] & ~p.segstart_q[2:] & ~p.segstart_q[1:-1]]
            pos1 = np.flatnonzero(hit & prev1)
            pos2 = np.flatnonzero(hit & prev2 & ~prev1)
            start[pos1] = p.run_q[pos1 - 1]
            start[pos2] = p.run_q[pos2 - 2]
        best = np.maximum(best, _run_max(p.n_runs, p.run_q, start))
    return best


def _pooled_starts(spec: RuleSpec, p: _Prepared) -> IntArray:
    """Across-materials over whole runs: per run, start run of the latest violating window (-1: none)."""
    idx = np.arange(p.n_runs, dtype=np.int64)
    c = p.cum
    s = p.window_start(spec.n)
    usable = p.mixed & (s >= p.pooled_epoch)
    best = np.full(p.n_runs, -1, dtype=np.int64)
    for side in (1, -1):
        if spec.kind == "streak":
            sat, allsat = p.run_sat(spec.band, side)
            cand = np.flatnonzero(usable & (allsat >= idx - s))  # newer runs of the window all qualify
            sc = s[cand]
            good = sat[sc] >= spec.n - (c[cand] - c[sc])  # and enough of the oldest run
            best[cand[good]] = sc[good]
        else:  # two_of_three
            hits = p.run_sat(3, side)[0]
            last = np.maximum.accumulate(np.where(hits > 0, idx, -1))
            prev = np.r_[-1, last[:-1]]
            start = np.where(
                hits >= 2,
                idx,
                np.where((hits == 1) & (prev >= np.maximum(s, p.pooled_epoch)), prev, -1),
            )
            best = np.maximum(best, np.where(p.mixed, start, -1))
    return best


def evaluate_arrays(
    analyte: IntArray,
    run: IntArray,
    material: IntArray,
    lot: IntArray,
    value: FloatArray,
    mean: FloatArray,
    sd: FloatArray,
    rules: RuleSet = DEFAULT_RULES,
) -> tuple[npt.NDArray[np.int8], dict[tuple[str, Scope], BoolArray]]:
    """Core on integer-coded arrays already in run-major order (``run`` = 0..R-1, non-decreasing)."""
    p = _prepare(analyte, run, material, lot, value, mean, sd)
    active = sorted(rules.active)
    absmax = np.maximum.reduceat(np.abs(p.band_p), p.run_starts)
    within: dict[str, BoolArray] = {}
    starts: dict[tuple[str, Scope], IntArray] = {}
    trend = None
    if "7_T" in active:
        trend = _trend_steps(p.v_q, p.m_q, p.s_q, p.segstart_q)
    for name in active:
        spec = RULE_SPECS[name]
        if spec.kind == "single":
            within[name] = absmax >= spec.band
        elif spec.kind == "range":
            within[name] = (np.maximum.reduceat(p.band_p, p.run_starts) >= 3) & (
                np.minimum.reduceat(p.band_p, p.run_starts) <= -3
            )
        else:
            starts[(name, Scope.WITHIN_MATERIAL)] = _material_starts(spec, p, trend)
            if Scope.ACROSS_MATERIALS in spec.scopes:
                starts[(name, Scope.ACROSS_MATERIALS)] = _pooled_starts(spec, p)

    w = np.zeros(p.n_runs, dtype=bool)
    for name, arr in within.items():
        if name in rules.reject:
            w |= arr
    smax = np.full(p.n_runs, -1, dtype=np.int64)
    for (name, _scope), arr in starts.items():
        if name in rules.reject:
            smax = np.maximum(smax, arr)
    if rules.reset_on_reject:
        rej = np.zeros(p.n_runs, dtype=bool)
        cand = np.flatnonzero(w | (smax >= 0))
        last = -1
        for r, wr, sr in zip(cand.tolist(), w[cand].tolist(), smax[cand].tolist(), strict=True):
            if wr or sr > last:
                rej[r] = True
                last = r
        last_rej = np.maximum.accumulate(np.where(rej, np.arange(p.n_runs), -1))
        epoch = np.r_[0, last_rej[:-1] + 1]
    else:
        rej = w | (smax >= 0)
        epoch = np.zeros(p.n_runs, dtype=np.int64)

    fired: dict[tuple[str, Scope], BoolArray] = {(n, Scope.WITHIN_RUN): a for n, a in within.items()}
    for key, arr in starts.items():
        fired[key] = (arr >= 0) & (arr >= epoch)
    warn = np.zeros(p.n_runs, dtype=bool)
    for (name, _scope), arr in fired.items():
        if name in rules.warn:
            warn |= arr
    decision = np.where(rej, 2, np.where(warn, 1, 0)).astype(np.int8)
    return decision, fired


def evaluate_frame(frame: pd.DataFrame, rules: RuleSet = DEFAULT_RULES) -> BatchResult:
    """Evaluate a long-format DataFrame (``run, material, lot, value, mean, sd``, optional ``analyte``).

    Numeric columns must already be numbers (use :mod:`qc.batch` to read and validate a CSV).  Runs are taken
    in order of first appearance per analyte; a run reappearing after another run is a :class:`QcInputError`.
    """
    required = ["run", "material", "lot", "value", "mean", "sd"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise QcInputError(f"missing column(s): {', '.join(missing)}")
    n = len(frame)
    if n == 0:
        return BatchResult(
            np.array([], dtype=object), np.array([], dtype=object), np.array([], dtype=np.int8), {}
        )
    values = [frame[c].to_numpy(dtype=np.float64) for c in ("value", "mean", "sd")]
    for c, arr in zip(("value", "mean", "sd"), values, strict=True):
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            raise QcInputError(f"observation {int(bad[0])}: {c} is missing or not a finite number")
    bad = np.flatnonzero(values[2] <= 0)
    if len(bad):
        raise QcInputError(f"observation {int(bad[0])}: target SD must be > 0")
    if "analyte" in frame.columns:
        a_codes, a_labels = pd.factorize(frame["analyte"], sort=False)
    else:
        a_codes, a_labels = np.zeros(n, dtype=np.int64), np.array([""], dtype=object)
    a_codes = a_codes.astype(np.int64)
    order = None if np.all(a_codes[1:] >= a_codes[:-1]) else np.argsort(a_codes, kind="stable")
    r_codes, r_labels = pd.factorize(frame["run"], sort=False)
    m_codes = pd.factorize(frame["material"], sort=False)[0].astype(np.int64)
    for c, codes in (("run id", r_codes), ("material", m_codes)):
        bad = np.flatnonzero(codes < 0)
        if len(bad):
            raise QcInputError(f"observation {int(bad[0])}: missing {c}")
    l_codes = pd.factorize(frame["lot"], sort=False)[0].astype(np.int64)
    rr = r_codes.astype(np.int64)
    if order is not None:
        a_codes, rr, m_codes, l_codes = a_codes[order], rr[order], m_codes[order], l_codes[order]
        values = [x[order] for x in values]
    run_idx, uniq = pd.factorize(a_codes * (len(r_labels) + 1) + rr, sort=False)
    run_idx = run_idx.astype(np.int64)
    back = np.flatnonzero(run_idx[1:] < run_idx[:-1])
    if len(back):
        row = int(back[0]) + 1
        row = int(order[row]) if order is not None else row
        raise QcInputError(
            f"observation {row}: run {frame['run'].iloc[row]!r} reappears after another run; "
            "runs must be in order"
        )
    decision, fired = evaluate_arrays(a_codes, run_idx, m_codes, l_codes, *values, rules)
    uniq = np.asarray(uniq)
    run_labels = np.asarray(r_labels, dtype=object)[uniq % (len(r_labels) + 1)]
    analyte_labels = np.asarray(a_labels, dtype=object)[uniq // (len(r_labels) + 1)]
    if order is not None:  # report runs in order of first appearance in the input
        first_pos = np.full(len(uniq), n, dtype=np.int64)
        np.minimum.at(first_pos, run_idx, order)
        ro = np.argsort(first_pos, kind="stable")
        run_labels, analyte_labels, decision = run_labels[ro], analyte_labels[ro], decision[ro]
        fired = {k: v[ro] for k, v in fired.items()}
    return BatchResult(run_labels, analyte_labels, decision, fired)
