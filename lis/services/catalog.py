"""The test catalogue: lookups for ingest and the API, import from CSV/TOML, the seeded demo catalogue."""

from __future__ import annotations

import csv
import io
import threading
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from lis.db import Database
from lis.models import Panel, PanelMember, ReferenceRange, TestCodeMap, TestDefinition
from lis.services import audit


class CatalogError(ValueError):
    """A catalogue file is invalid; the message names the file, the row and the column."""


@dataclass(frozen=True)
class CatalogSnapshot:
    """An in-memory view for matching: tests by code and by LOINC, the lab's code maps."""

    by_code: dict[str, TestDefinition]
    by_loinc: dict[str, TestDefinition]
    code_maps: dict[tuple[str, str], str]  # (instrument, instrument code) -> test code
    panels: dict[str, list[str]]


class CatalogCache:
    """Reloads the snapshot when told (same process) or after ``ttl`` seconds (other processes)."""

    def __init__(self, db: Database, ttl: float = 30.0) -> None:
        self._db = db
        self._ttl = ttl
        self._snapshot: CatalogSnapshot | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self.generation = 0  # counts invalidations: a worker process compares it to drop its own copy

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None
            self.generation += 1

    def get(self) -> CatalogSnapshot:
        with self._lock:
            if self._snapshot is None or time.monotonic() - self._loaded_at > self._ttl:
                with self._db.read() as session:
                    self._snapshot = load_snapshot(session)
                self._loaded_at = time.monotonic()
            return self._snapshot


def load_snapshot(session: Session) -> CatalogSnapshot:
    tests = list(session.exec(select(TestDefinition).where(TestDefinition.active)).all())
    maps = session.exec(select(TestCodeMap)).all()
    panels: dict[str, list[str]] = {}
    for member in session.exec(select(PanelMember).order_by(PanelMember.panel_code, PanelMember.position)).all():
        panels.setdefault(member.panel_code, []).append(member.test_code)
    return CatalogSnapshot(
        by_code={t.code: t for t in tests},
        by_loinc={t.loinc: t for t in tests if t.loinc},
        code_maps={(m.instrument, m.instrument_code): m.test_code for m in maps},
        panels=panels,
    )


def _float(value: Any, where: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(str(value).replace(",", "."))
    except ValueError as exc:
        raise CatalogError(f"{where}: {value!r} is not a number") from exc


def _test_from_row(row: dict[str, Any], where: str) -> tuple[TestDefinition, str]:
    code = str(row.get("code") or "").strip()
    if not code:
        raise CatalogError(f"{where}: code is empty")
    if not row.get("name_en") and not row.get("name_vi"):
        raise CatalogError(f"{where}: name_en or name_vi is required")
    decimals = row.get("decimals") or 2
    try:
        decimals = int(decimals)
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: decimals {decimals!r} is not a whole number") from exc
    test = TestDefinition(
        code=code,
        name_en=str(row.get("name_en") or row.get("name_vi")),
        name_vi=str(row.get("name_vi") or row.get("name_en")),
        loinc=str(row.get("loinc") or ""),
        unit=str(row.get("unit") or ""),
        decimals=decimals,
        section=str(row.get("section") or "chemistry"),
        specimen_type=str(row.get("specimen_type") or "serum"),
        result_type=str(row.get("result_type") or ("numeric" if row.get("unit") else "text")),
        validity_low=_float(row.get("validity_low"), where),
        validity_high=_float(row.get("validity_high"), where),
    )
    return test, str(row.get("panel") or "")


def _range_from_row(row: dict[str, Any], where: str) -> ReferenceRange:
    sex = str(row.get("sex") or "U").upper()
    if sex not in ("M", "F", "U"):
        raise CatalogError(f"{where}: sex must be M, F or U, not {sex!r}")
    age_min = _float(row.get("age_min_years"), where) or 0.0
    age_max = _float(row.get("age_max_years"), where)
    return ReferenceRange(
        test_code=str(row["test_code"]),
        sex=sex,
        age_min_days=round(age_min * 365.25),
        age_max_days=None if age_max is None else round(age_max * 365.25),
        instrument=row.get("instrument") or None,
        low=_float(row.get("low"), where),
        high=_float(row.get("high"), where),
        critical_low=_float(row.get("critical_low"), where),
        critical_high=_float(row.get("critical_high"), where),
        text=str(row.get("text") or ""),
    )


@dataclass
class ImportSummary:
    tests: int = 0
    panels: int = 0
    ranges: int = 0


def read_catalog_file(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(tests, panels, ranges) rows from a CSV (tests, or ranges when it has test_code) or a TOML file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read: {exc.strerror}") from exc
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(f"{path}: not valid TOML: {exc}") from exc
        unknown = set(data) - {"tests", "panels", "ranges"}
        if unknown:
            raise CatalogError(f"{path}: unknown table {sorted(unknown)[0]!r} (expected tests, panels, ranges)")
        return list(data.get("tests", [])), list(data.get("panels", [])), list(data.get("ranges", []))
    if path.suffix.lower() != ".csv":
        raise CatalogError(f"{path}: use a .csv or .toml file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path}: not UTF-8 text") from exc
    rows = list(csv.DictReader(io.StringIO(text)))
    header = set(rows[0]) if rows else set()
    if "test_code" in header:
        return [], [], rows
    if "code" not in header:
        raise CatalogError(f"{path}: CSV needs a header with 'code' (tests) or 'test_code' (ranges)")
    return rows, [], []


def import_catalog(
    session: Session,
    tests: Sequence[dict[str, Any]],
    panels: Sequence[dict[str, Any]] = (),
    ranges: Sequence[dict[str, Any]] = (),
    *,
    source: str = "catalog",
    actor: str = "system",
) -> ImportSummary:
    """Upsert tests and panels, replace the ranges of the tests named; all in the caller's transaction."""
    summary = ImportSummary()
    panel_members: dict[str, list[str]] = {}
    for i, row in enumerate(tests, start=2):
        test, panel = _test_from_row(row, f"{source} row {i}")
        session.merge(test)
        summary.tests += 1
        if panel:
            panel_members.setdefault(panel, []).append(test.code)
    session.flush()
    for i, row in enumerate(panels, start=1):
        code = str(row.get("code") or "")
        if not code:
            raise CatalogError(f"{source} panel {i}: code is empty")
        session.merge(Panel(code=code, name_en=row.get("name_en", code), name_vi=row.get("name_vi", code),
                            loinc=row.get("loinc", "")))
        panel_members.setdefault(code, []).extend(row.get("tests", []))
    for code, members in panel_members.items():
        if session.get(Panel, code) is None:
            session.add(Panel(code=code, name_en=code, name_vi=code))
        session.flush()
        for position, test_code in enumerate(dict.fromkeys(members)):
            if session.get(TestDefinition, test_code) is None:
                raise CatalogError(f"{source}: panel {code} names unknown test {test_code!r}")
            session.merge(PanelMember(panel_code=code, test_code=test_code, position=position))
        summary.panels += 1
    replaced: set[str] = set()
    for i, row in enumerate(ranges, start=2):
        where = f"{source} range row {i}"
        test_code = str(row.get("test_code") or "")
        if session.get(TestDefinition, test_code) is None:
            raise CatalogError(f"{where}: unknown test_code {test_code!r}")
        if test_code not in replaced:
            for old in session.exec(select(ReferenceRange).where(ReferenceRange.test_code == test_code)).all():
                session.delete(old)
            session.flush()
            replaced.add(test_code)
        session.add(_range_from_row(row, where))
        summary.ranges += 1
    audit.record(session, actor, "catalog.import", "catalog", source, after=summary.__dict__)
    return summary


def seed_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The shipped catalogue (lis/seed/catalog.csv, panels.toml, ranges.csv)."""
    seed = resources.files("lis.seed")
    tests = list(csv.DictReader(io.StringIO(seed.joinpath("catalog.csv").read_text(encoding="utf-8"))))
    panels = tomllib.loads(seed.joinpath("panels.toml").read_text(encoding="utf-8"))["panels"]
    ranges = list(csv.DictReader(io.StringIO(seed.joinpath("ranges.csv").read_text(encoding="utf-8"))))
    return tests, panels, ranges
