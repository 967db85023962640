"""Batch QC evaluation of a long-format CSV (behind ``lis qc evaluate``).

Input: one row per observation with columns ``run,material,lot,value,mean,sd`` (any order, extra columns
ignored; an optional ``analyte`` column makes each analyte an independent series).  Runs are taken in the
order they appear; the rows of a run must be contiguous (a run id that reappears after another run is an
error).  Every error names the **line number of the CSV file** (the header is line 1, so the first data row
is line 2) and, in brackets, the 1-based data row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from qc.exact import to_decimal
from qc.model import DECISION_ORDER, QcInputError, RuleSet
from qc.vectorized import DECISION_NAMES, evaluate_frame

REQUIRED_COLUMNS = ("run", "material", "lot", "value", "mean", "sd")
_NUMERIC = {"value": "value", "mean": "target mean", "sd": "target SD"}


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Decision of one run as reported by the batch evaluator."""

    run: str
    decision: str
    violations: list[str]
    analyte: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.analyte is not None:
            out["analyte"] = self.analyte
        out.update(run=self.run, decision=self.decision, violations=self.violations)
        return out


def _where(line: int, row: int) -> str:
    return f"line {line} (data row {row})"


def _number(text: str | None, what: str, where: str) -> Decimal:
    if text is None or not text.strip():
        raise QcInputError(f"{where}: missing {what}")
    try:
        return to_decimal(text, what=what)
    except QcInputError:
        raise QcInputError(f"{where}: {what} {text.strip()!r} is not a number") from None


def read_csv(source: str | Path | io.TextIOBase | Iterable[str]) -> pd.DataFrame:
    """Read and validate the CSV; return a DataFrame with numeric value/mean/sd (float) and a ``line`` column.

    Raises :class:`QcInputError` naming the line for: missing columns, empty run/material, missing or
    non-numeric value/mean/sd (e.g. ``<0.1``, ``----``), SD <= 0, and a run that reappears after another run.
    """
    if isinstance(source, str | Path):
        with open(source, newline="", encoding="utf-8-sig") as fh:
            return read_csv(fh)
    reader = csv.DictReader(source)  # type: ignore[arg-type]
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise QcInputError(f"line 1 (header): missing column(s): {', '.join(missing)}")
    has_analyte = "analyte" in header
    cols: dict[str, list[object]] = {c: [] for c in (*REQUIRED_COLUMNS, "analyte", "line")}
    current: dict[str, str] = {}
    closed: dict[tuple[str, str], int] = {}
    for row_no, rec in enumerate(reader, start=1):
        line = reader.line_num
        where = _where(line, row_no)
        run = (rec.get("run") or "").strip()
        material = (rec.get("material") or "").strip()
        if not run:
            raise QcInputError(f"{where}: missing run id")
        if not material:
            raise QcInputError(f"{where}: missing material")
        analyte = (rec.get("analyte") or "").strip() if has_analyte else ""
        nums = {c: _number(rec.get(c), what, where) for c, what in _NUMERIC.items()}
        if nums["sd"] <= 0:
            raise QcInputError(f"{where}: target SD must be > 0, got {rec['sd'].strip()!r}")
        prev = current.get(analyte)
        if prev != run:
            if (analyte, run) in closed:
                raise QcInputError(
                    f"{where}: run {run!r} reappears after run {prev!r}; the rows of a run must be "
                    f"contiguous and runs in order (run {run!r} was closed at line {closed[(analyte, run)]})"
                )
            if prev is not None:
                closed[(analyte, prev)] = line
            current[analyte] = run
        cols["run"].append(run)
        cols["material"].append(material)
        cols["lot"].append((rec.get("lot") or "").strip())
        for c in _NUMERIC:
            cols[c].append(float(nums[c]))
        cols["analyte"].append(analyte)
        cols["line"].append(line)
    if not has_analyte:
        del cols["analyte"]
    return pd.DataFrame(cols)


def evaluate_csv(source: str | Path | io.TextIOBase | Iterable[str], rules: RuleSet) -> list[RunSummary]:
    """Evaluate a QC CSV; one :class:`RunSummary` per run in input order."""
    frame = read_csv(source)
    result = evaluate_frame(frame, rules)
    has_analyte = "analyte" in frame.columns
    return [
        RunSummary(str(run), DECISION_NAMES[int(code)], names, str(analyte) if has_analyte else None)
        for run, analyte, code, names in zip(
            result.run, result.analyte, result.decision, result.violations(), strict=True
        )
    ]


def format_text(summaries: list[RunSummary]) -> str:
    """Readable table: run, decision, violations; then a count per decision."""
    has_analyte = any(s.analyte is not None for s in summaries)
    head = (["analyte"] if has_analyte else []) + ["run", "decision", "violations"]
    rows = [
        ([s.analyte or ""] if has_analyte else []) + [s.run, s.decision, ", ".join(s.violations) or "-"]
        for s in summaries
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    counts = np.bincount([DECISION_ORDER[s.decision] for s in summaries], minlength=3)
    lines.append(
        f"{len(summaries)} runs: {counts[0]} accepted, {counts[1]} with warning, {counts[2]} rejected"
    )
    return "\n".join(lines)
