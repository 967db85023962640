"""The shipped HL7 analyser profiles load and map to real catalogue tests (code, LOINC)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from drivers.hl7.message import parse_path
from drivers.profile import get_profile

CATALOG = Path(__file__).parents[3] / "lis" / "seed" / "catalog.csv"
HL7_PROFILES = ["generic-hl7", "mindray-bc", "mindray-bs", "snibe-maglumi", "ihe-law", "sysmex-hl7"]


def catalogue() -> dict[str, dict[str, str]]:
    with CATALOG.open(encoding="utf-8") as handle:
        return {row["code"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("name", HL7_PROFILES)
def test_profile_loads_and_maps_to_the_catalogue(name: str) -> None:
    profile = get_profile(name)
    tests = catalogue()
    assert profile.protocol == "hl7"
    assert profile.histograms in ("attachment", "ignore")
    if profile.specimen_id_field:
        parse_path(profile.specimen_id_field)
    parse_path(str(profile.extra.get("obx_code_field", "OBX.3.1")))
    for code, mapping in profile.codes.items():
        assert mapping.test in tests, f"{name}: {code} -> unknown LIS test {mapping.test}"
        assert mapping.loinc == tests[mapping.test]["loinc"], f"{name}: {code} LOINC differs from the catalogue"


def test_ihe_law_maps_every_catalogue_loinc() -> None:
    profile = get_profile("ihe-law")
    assert {m.test for m in profile.codes.values()} == set(catalogue())


@pytest.mark.parametrize(("name", "minimum"), [("mindray-bc", 20), ("mindray-bs", 25), ("snibe-maglumi", 8)])
def test_vendor_profiles_cover_their_menu(name: str, minimum: int) -> None:
    assert len(get_profile(name).codes) >= minimum
