"""The shipped ASTM analyser profiles load and map only to real LIS catalogue codes, LOINC and units."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from drivers.astm.report import FieldRef
from drivers.profile import available_profiles, get_profile

REPO = Path(__file__).resolve().parents[3]
ASTM_PROFILES = [
    "sysmex-xn", "sysmex-xp", "roche-cobas-c111", "roche-cobas-c311", "roche-cobas-e411", "abbott-architect",
    "abbott-afinion2", "siemens-dca-vantage", "horiba-pentra", "horiba-yumizen-h500", "horiba-yumizen-h550",
    "cepheid-genexpert", "ortho-vitros", "erba-xl", "biorad-ih1000", "immucor-galileo", "euroimmun-analyzer1",
    "generic-astm",
]
# UCUM spellings of units analysers really report, beyond the catalogue's own unit
UCUM = {"10*3/uL", "10*6/uL", "g/dL", "g/L", "%", "fL", "pg", "mg/L", "mg/dL", "mg/g", "U/L", "mmol/L", "umol/L"}


def _catalogue() -> dict[str, dict[str, str]]:
    with (REPO / "lis" / "seed" / "catalog.csv").open(encoding="utf-8") as f:
        return {row["code"]: row for row in csv.DictReader(f)}


def test_every_astm_profile_is_shipped() -> None:
    assert set(ASTM_PROFILES) <= set(available_profiles())


@pytest.mark.parametrize("name", ASTM_PROFILES)
def test_profile_maps_to_catalogue_codes_with_their_loinc(name: str) -> None:
    profile = get_profile(name)
    assert profile.protocol == "astm"
    catalogue = _catalogue()
    for code, mapping in profile.codes.items():
        assert mapping.test in catalogue, f"{name}: {code} -> {mapping.test} is not in catalog.csv"
        assert mapping.loinc == catalogue[mapping.test]["loinc"], f"{name}: {code} LOINC differs from catalogue"
        if mapping.unit is not None:
            assert mapping.unit == catalogue[mapping.test]["unit"] or mapping.unit in UCUM, (name, code)


@pytest.mark.parametrize("name", ASTM_PROFILES)
def test_profile_field_references_are_valid(name: str) -> None:
    profile = get_profile(name)
    refs = [profile.specimen_id_field or "O.3", *profile.extra.get("specimen_id_fallbacks", []),
            profile.qc.lot_field, profile.qc.material_field, profile.qc.level_field]
    for ref in filter(None, refs):
        assert FieldRef.parse(ref).record in "HPOR"
    assert profile.histograms in ("attachment", "ignore")
    assert profile.encoding in ("ascii", "latin-1", "cp1252", "utf-8")
