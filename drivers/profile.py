"""Analyser profiles: an analyser dialect described as data (ARCHITECTURE.md, principle 4).

A profile is a TOML file in ``drivers/profiles/`` (shipped) or in ``<data_dir>/profiles/`` (the lab's
own, which wins on a name clash). Adding an analyser means adding a file, never forking code.

Schema (every key optional except ``name`` and ``protocol``)::

    name = "sysmex-xn"
    description = "Sysmex XN-series haematology (ASTM)"
    protocol = "astm"                 # astm | hl7
    encoding = "latin-1"              # ascii | latin-1 | cp1252 | utf-8
    frame_size = 240                  # ASTM text bytes per outgoing frame (LIS1-A: 240)
    max_frame_size = 65536            # ASTM: refuse longer incoming frames
    specimen_id_field = "O.3"         # record.field[.component] holding the specimen id (1-based)
    test_code_component = 4           # component of R-3 / O-5 holding the instrument test code
    host_query = true                 # the analyser sends host queries (ASTM Q / HL7 QBP, QRY)
    histograms = "attachment"         # attachment | ignore: what to do with M records / ED OBX
    accept_unknown_specimen = "AA"    # HL7: MSA code when the specimen is unknown (AA or AE)
    fold_to_ascii = false             # send Vietnamese names without diacritics

    [codes."WBC"]                     # instrument test code -> LIS catalogue
    test = "WBC"                      # LIS test code
    loinc = "6690-2"
    unit = "10*3/uL"                  # UCUM unit the analyser really reports (override)

    [flags]                           # instrument flag -> LIS flag (LIS2-A2 R-7 vocabulary)
    "+" = "H"

    [qc]
    action_codes = ["Q"]              # ASTM O-12 values marking a QC sample
    specimen_id_patterns = ["^QC", "^CTRL"]  # regular expressions on the specimen id
    lot_field = "O.3.2"               # where the control lot sits, if anywhere
    material_field = "O.3.1"
    # HL7: action_codes are matched on SPM-11 (specimen role, table 0369: Q = control) unless
    # extra.qc_fields says otherwise; *_field are HL7 paths ("INV.16", "SPM.2.1") or "OBX:<code>"
    # (OBX-5 of the OBX with that code in the specimen group).

    [extra]                           # HL7 dialect keys read by drivers/hl7/report.py
    obx_code_field = "OBX.3.1"        # OBX path of the instrument test code (Mindray BS: "OBX.4")
    timezone = "Asia/Ho_Chi_Minh"     # zone of naive HL7 times (no +ZZZZ offset)
    trust_msh18 = true                # false: the profile encoding wins over MSH-18
    observed_at_fallback = "OBR.7"    # observation time when OBX-14 is empty (default: none)
    info_codes = ["08001"]            # OBX codes that are sample information -> specimen comments
    qc_fields = { "MSH.16" = ["2"] }  # HL7 path -> values marking a QC sample (default SPM.11 = action_codes)
    calibration_fields = { "MSH.16" = ["1"] }  # calibration messages: acknowledged, not stored
    # ASTM dialect keys read by drivers/astm/report.py and drivers/astm/orders.py:
    specimen_id_fallbacks = ["O.4.1"] # tried in order while specimen_id_field is empty (default O-4.1)
    patient_id_fields = ["P.3", "P.4", "P.5"]  # the first non-empty is the patient id
    test_code_components = [4, 11]    # several R-3 components joined with "^" form the test code
    test_name_component = 5           # R-3 component holding the test name
    loinc_component = 5               # R-3 component holding a LOINC the analyser sends
    order_test_code_component = 4     # O-5 component of the test code in order downloads
    no_order_reply = "order"          # unknown specimen: "order" (O-26 = Y) or "query" (Q-13 = X)
    receiver_id = "XN-550"            # H-10 of messages the LIS sends to the analyser
    # (timezone is shared: zone of the analyser's naive LIS2-A2 timestamps)
"""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SHIPPED_DIR = Path(__file__).with_name("profiles")


class ProfileError(ValueError):
    """A profile file is missing or invalid; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class CodeMapping:
    """Where one instrument test code goes in the LIS catalogue."""

    test: str | None = None
    loinc: str = ""
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class QcRecognition:
    """How a profile tells QC samples from patient samples."""

    action_codes: tuple[str, ...] = ("Q",)
    specimen_id_patterns: tuple[re.Pattern[str], ...] = ()
    lot_field: str = ""
    material_field: str = ""
    level_field: str = ""

    def matches_specimen_id(self, specimen_id: str) -> bool:
        return any(p.search(specimen_id) for p in self.specimen_id_patterns)


@dataclass(frozen=True, slots=True)
class Profile:
    """One analyser dialect. See the module docstring for the file schema."""

    name: str
    protocol: str
    description: str = ""
    encoding: str = "latin-1"
    frame_size: int = 240
    max_frame_size: int = 65536
    specimen_id_field: str = ""
    test_code_component: int = 4
    host_query: bool = False
    histograms: str = "attachment"
    accept_unknown_specimen: str = "AA"
    fold_to_ascii: bool = False
    codes: dict[str, CodeMapping] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    qc: QcRecognition = field(default_factory=QcRecognition)
    extra: dict[str, Any] = field(default_factory=dict)  # dialect keys a driver reads by name
    source: str = ""  # file it was loaded from

    def map_code(self, instrument_code: str) -> CodeMapping | None:
        return self.codes.get(instrument_code)

    def map_flag(self, flag: str) -> str:
        return self.flags.get(flag, flag)


_KNOWN_KEYS = {
    "name", "protocol", "description", "encoding", "frame_size", "max_frame_size", "specimen_id_field",
    "test_code_component", "host_query", "histograms", "accept_unknown_specimen", "fold_to_ascii",
    "codes", "flags", "qc", "extra",
}
_PROTOCOLS = {"astm", "hl7"}
_ENCODINGS = {"ascii", "latin-1", "cp1252", "utf-8"}


def _parse(data: dict[str, Any], source: str) -> Profile:
    def fail(key: str, why: str) -> ProfileError:
        return ProfileError(f"{source}: {key}: {why}")

    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise fail(unknown[0], "unknown key")
    for key in ("name", "protocol"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise fail(key, "required text value is missing")
    if data["protocol"] not in _PROTOCOLS:
        raise fail("protocol", f"must be one of {sorted(_PROTOCOLS)}")
    encoding = data.get("encoding", "latin-1")
    if encoding not in _ENCODINGS:
        raise fail("encoding", f"must be one of {sorted(_ENCODINGS)}")
    codes: dict[str, CodeMapping] = {}
    for code, spec in (data.get("codes") or {}).items():
        if isinstance(spec, str):
            codes[str(code)] = CodeMapping(test=spec)
        elif isinstance(spec, dict):
            bad = set(spec) - {"test", "loinc", "unit"}
            if bad:
                raise fail(f"codes.{code}.{sorted(bad)[0]}", "unknown key")
            codes[str(code)] = CodeMapping(test=spec.get("test"), loinc=spec.get("loinc", ""), unit=spec.get("unit"))
        else:
            raise fail(f"codes.{code}", "must be a LIS code or a table")
    qc_data = dict(data.get("qc") or {})
    try:
        patterns = tuple(re.compile(p) for p in qc_data.pop("specimen_id_patterns", []))
    except re.error as exc:
        raise fail("qc.specimen_id_patterns", f"bad regular expression: {exc}") from exc
    bad_qc = set(qc_data) - {"action_codes", "lot_field", "material_field", "level_field"}
    if bad_qc:
        raise fail(f"qc.{sorted(bad_qc)[0]}", "unknown key")
    qc = QcRecognition(
        action_codes=tuple(qc_data.get("action_codes", ("Q",))),
        specimen_id_patterns=patterns,
        lot_field=qc_data.get("lot_field", ""),
        material_field=qc_data.get("material_field", ""),
        level_field=qc_data.get("level_field", ""),
    )
    kwargs = {k: v for k, v in data.items() if k not in {"codes", "qc", "flags"}}
    try:
        return Profile(**kwargs, codes=codes, flags=dict(data.get("flags") or {}), qc=qc, source=source)
    except TypeError as exc:  # pragma: no cover - guarded by _KNOWN_KEYS
        raise fail("?", str(exc)) from exc


def load_profile_file(path: Path) -> Profile:
    """Read and validate one profile file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    return _parse(data, str(path))


def available_profiles(extra_dirs: tuple[Path, ...] = ()) -> dict[str, Path]:
    """Profile name -> file, shipped profiles first, the lab's own directories overriding them."""
    found: dict[str, Path] = {}
    for directory in (SHIPPED_DIR, *extra_dirs):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found[path.stem] = path
    return found


@cache
def _load_cached(path: str, mtime_ns: int) -> Profile:
    return load_profile_file(Path(path))


_RECHECK_S = 2.0  # how long a looked-up profile is used before its file is looked at again
_recent: dict[tuple[str, tuple[Path, ...]], tuple[float, Profile]] = {}


def get_profile(name: str, extra_dirs: tuple[Path, ...] = ()) -> Profile:
    """The profile called ``name`` (file stem); raises :class:`ProfileError` naming the known ones.

    Called for every analyser message: the directory listing and the file's mtime are checked at most
    every couple of seconds (an edited or added profile file is still picked up without a restart).
    """
    key = (name, extra_dirs)
    now = time.monotonic()
    hit = _recent.get(key)
    if hit is not None and now - hit[0] < _RECHECK_S:
        return hit[1]
    profiles = available_profiles(extra_dirs)
    path = profiles.get(name)
    if path is None:
        raise ProfileError(f"unknown analyser profile {name!r}; known: {', '.join(sorted(profiles))}")
    profile = _load_cached(str(path), path.stat().st_mtime_ns)
    _recent[key] = (now, profile)
    return profile
