"""Messages an analyser would send, generated for a profile or replayed from a capture.

Values are drawn around the catalogue's adult reference ranges (``lis/seed/ranges.csv``): mostly inside,
sometimes a little outside (flagged ``H``/``L`` the way LIS2-A2 R-7 and HL7 OBX-8 do). Specimen ids and tests
come from the caller (e.g. the LIS's pending orders); otherwise random accession numbers and the profile's
own test codes are used. QC samples (LIS2-A2 O-12 action code ``Q``; HL7 SPM-11 ``Q``) appear when asked.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from drivers.astm.framing import deframe
from drivers.profile import Profile

_FALLBACK_TESTS = ("GLU", "UREA", "CREA", "ALT", "AST", "CHOL", "TG", "NA", "K", "CL")


@dataclass(frozen=True, slots=True)
class Range:
    low: float
    high: float
    decimals: int


def _load_ranges() -> dict[str, Range]:
    text = resources.files("lis.seed").joinpath("ranges.csv").read_text(encoding="utf-8")
    ranges: dict[str, Range] = {}
    for row in csv.DictReader(io.StringIO(text)):
        code = row["test_code"]
        if code in ranges or not row["low"] or not row["high"]:
            continue
        low, high = float(row["low"]), float(row["high"])
        decimals = max(len(v.partition(".")[2]) for v in (row["low"], row["high"]))
        ranges[code] = Range(low, high, max(decimals, 1 if high < 20 else 0))
    return ranges


RANGES = _load_ranges()


@dataclass(frozen=True, slots=True)
class Value:
    code: str
    value: str
    unit: str
    range_text: str
    flag: str


def lis_code(profile: Profile, instrument_code: str) -> str:
    mapping = profile.codes.get(instrument_code)
    return mapping.test if mapping is not None and mapping.test else instrument_code


def draw(profile: Profile, instrument_code: str, rng: random.Random) -> Value:
    """A plausible value for ``instrument_code``: 85 % inside the reference range, else just outside."""
    code = lis_code(profile, instrument_code)
    rng_def = RANGES.get(code, Range(1.0, 10.0, 1))
    span = rng_def.high - rng_def.low
    if rng.random() < 0.85:
        x = rng.uniform(rng_def.low, rng_def.high)
    else:
        x = rng.choice((rng_def.low - rng.uniform(0.05, 0.3) * span, rng_def.high + rng.uniform(0.05, 0.5) * span))
    x = max(x, 0.0)
    flag = "L" if x < rng_def.low else "H" if x > rng_def.high else "N"
    mapping = profile.codes.get(instrument_code)
    unit = (mapping.unit if mapping is not None and mapping.unit else "") or ""
    fmt = f"{{:.{rng_def.decimals}f}}"
    return Value(instrument_code, fmt.format(x), unit, f"{fmt.format(rng_def.low)}-{fmt.format(rng_def.high)}", flag)


def default_codes(profile: Profile) -> list[str]:
    """Instrument test codes the profile knows, or catalogue codes for the generic profiles."""
    codes = [c for c in profile.codes if lis_code(profile, c) in RANGES] or list(profile.codes)
    return codes or [c for c in RANGES if c.isalnum()][:40] or list(_FALLBACK_TESTS)


def random_specimen_id(rng: random.Random) -> str:
    return f"SIM{rng.randrange(10**8):08d}"


# -------------------------------------------------------------------------------------------- ASTM


def _put(fields: list[str], ref: str, value: str, expected: str) -> None:
    """Write ``value`` at a profile reference like ``O.3`` or ``O.4.3`` into a record's field list."""
    parts = ref.split(".") if ref else []
    if len(parts) < 2 or parts[0] != expected:
        parts = [expected, "3"]
    index = int(parts[1]) - 1
    while len(fields) <= index:
        fields.append("")
    if len(parts) == 3:
        comps = fields[index].split("^") if fields[index] else []
        k = int(parts[2]) - 1
        while len(comps) <= k:
            comps.append("")
        comps[k] = value
        fields[index] = "^".join(comps)
    else:
        fields[index] = value


def _test_id(code: str, component: int) -> str:
    return "^" * (component - 1) + code


def astm_results(profile: Profile, specimen_id: str, codes: Sequence[str], rng: random.Random, *,
                 qc: bool = False, now: datetime | None = None, control_id: str = "") -> bytes:
    """An LIS2-A2 results message H, P, O, R..., L (records separated by CR) for ``specimen_id``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d%H%M%S")
    component = profile.test_code_component
    sid = specimen_id if not qc else (specimen_id if specimen_id.startswith("QC") else f"QC{specimen_id}")
    records = [f"H|\\^&|{control_id}||SIMULATOR^{profile.name}^1.0|||||||P|LIS2-A2|{stamp}",
               "P|1||" + ("" if qc else f"PID{rng.randrange(10**6):06d}")]
    order = ["O", "1", "", "", "", "R", stamp, "", "", "", "", "Q" if qc else "N"]
    _put(order, profile.specimen_id_field or "O.3", sid, "O")
    order[4] = "\\".join(_test_id(c, component) for c in codes)
    order += [""] * 13 + ["F"]
    records.append("|".join(order))
    for i, code in enumerate(codes, start=1):
        v = draw(profile, code, rng)
        records.append(f"R|{i}|{_test_id(code, component)}|{v.value}|{v.unit}|{v.range_text}|{v.flag}||F||"
                       f"SIM||{stamp}|SIM1")
    records.append("L|1|N")
    return ("\r".join(records) + "\r").encode(profile.encoding, errors="replace")


def astm_query(profile: Profile, specimen_ids: Sequence[str], *, now: datetime | None = None) -> bytes:
    """A LIS2-A2 host query H, Q, L (Q-3 starting range ``^specimen``, test id ``ALL``)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d%H%M%S")
    ranges = "\\".join(f"^{s}" for s in specimen_ids)
    records = [f"H|\\^&|||SIMULATOR^{profile.name}^1.0|||||||P|LIS2-A2|{stamp}",
               f"Q|1|{ranges}||^^^ALL||||||||O", "L|1|N"]
    return ("\r".join(records) + "\r").encode(profile.encoding, errors="replace")


def astm_ordered_tests(records_text: bytes, profile: Profile) -> dict[str, list[str]]:
    """Specimen id -> instrument test codes from a LIS order download (O records; O-26 ``Y`` = no order)."""
    orders: dict[str, list[str]] = {}
    component = int(profile.extra.get("order_test_code_component", profile.test_code_component))
    for line in re.split(rb"[\r\n]+", records_text):
        text = line.decode(profile.encoding, errors="replace")
        if not text.startswith("O|"):
            continue
        f = text.split("|")
        sid = f[2].split("^")[0] if len(f) > 2 else ""
        tests = []
        for rep in (f[4].split("\\") if len(f) > 4 and f[4] else []):
            comps = rep.split("^")
            if len(comps) >= component and comps[component - 1]:
                tests.append(comps[component - 1])
        if len(f) > 25 and f[25] == "Y":
            tests = []
        orders[sid] = tests
    return orders


# -------------------------------------------------------------------------------------------- HL7


def _is_law(profile: Profile) -> bool:
    return profile.specimen_id_field.startswith("SPM")


def _code_field(profile: Profile) -> int:
    return 4 if str(profile.extra.get("obx_code_field", "OBX.3.1")).startswith("OBX.4") else 3


def hl7_results(profile: Profile, specimen_id: str, codes: Sequence[str], rng: random.Random, *,
                qc: bool = False, now: datetime | None = None, control_id: str = "") -> bytes:
    """``ORU^R01`` v2.3.1/2.5.1 (or IHE LAW ``OUL^R22`` for SPM-keyed profiles) for ``specimen_id``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d%H%M%S")
    cid = control_id or f"SIM{rng.randrange(10**12):012d}"
    charset = "UNICODE UTF-8" if profile.encoding == "utf-8" else ""
    sid = specimen_id if not qc else (specimen_id if specimen_id.startswith("QC") else f"QC{specimen_id}")
    code_field = _code_field(profile)
    obx = []
    for i, code in enumerate(codes, start=1):
        v = draw(profile, code, rng)
        ident = ["", "", "", ""]
        if code_field == 4:
            ident = [str(i), code]
            field3, field4 = ident[0], ident[1]
        else:
            field3, field4 = f"{code}^{code}^99SIM", ""
        obx.append(f"OBX|{i}|NM|{field3}|{field4}|{v.value}|{v.unit}|{v.range_text}|{v.flag}|||F|||{stamp}")
    if _is_law(profile):
        segs = [f"MSH|^~\\&|SIM|{profile.name}|LIS||{stamp}||OUL^R22^OUL_R22|{cid}|P|2.5.1||||||{charset}",
                "PID|1||" + ("" if qc else f"PID{rng.randrange(10**6):06d}"),
                f"SPM|1|{sid}||SER|||||||{'Q' if qc else 'P'}",
                f"OBR|1|{sid}|{sid}|PANEL^Panel^99SIM|||{stamp}",
                "ORC|SC", *obx]
    else:
        version = "2.3.1" if code_field == 4 else "2.5.1"
        msh16 = "2" if qc and "MSH.16" in dict(profile.extra.get("qc_fields") or {}) else "0"
        segs = [f"MSH|^~\\&|SIM|{profile.name}|LIS||{stamp}||ORU^R01|{cid}|P|{version}||||{msh16}||{charset}",
                "PID|1||" + ("" if qc else f"PID{rng.randrange(10**6):06d}"),
                f"OBR|1|{sid}|{sid}|PANEL^Panel^99SIM|||{stamp}", *obx]
    return ("\r".join(segs) + "\r").encode("utf-8" if charset else profile.encoding, errors="replace")


def hl7_query(profile: Profile, specimen_id: str, rng: random.Random, *, now: datetime | None = None) -> bytes:
    """IHE LAW ``QBP^Q11`` (LAB-27) or, for Mindray-style profiles, ``QRY^Q02``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d%H%M%S")
    cid = f"Q{rng.randrange(10**12):012d}"
    if _code_field(profile) == 4:
        segs = [f"MSH|^~\\&|SIM|{profile.name}|LIS||{stamp}||QRY^Q02|{cid}|P|2.3.1||||||ASCII",
                f"QRD|{stamp}|R|D|{cid}|||RD|{specimen_id}|OTH|||T",
                f"QRF|{profile.name.upper()}|{stamp}|{stamp}|||RCT|COR|ALL||"]
    else:
        segs = [f"MSH|^~\\&|SIM|{profile.name}|LIS||{stamp}||QBP^Q11^QBP_Q11|{cid}|P|2.5.1",
                f"QPD|WOS^Work Order Step^IHE_LABTF|{cid}|{specimen_id}", "RCP|I||R"]
    return ("\r".join(segs) + "\r").encode("ascii", errors="replace")


# -------------------------------------------------------------------------------------------- replay


def split_capture(data: bytes, protocol: str) -> list[bytes]:
    """Messages in a capture file: ASTM (framed or not) split at each H record; HL7 split at each MSH."""
    if protocol == "astm":
        text = deframe(data)
        messages: list[bytes] = []
        current: list[bytes] = []
        for record in re.split(rb"\r", text):
            if not record:
                continue
            if record[:1] in (b"H", b"h") and current:
                messages.append(b"\r".join(current) + b"\r")
                current = []
            current.append(record)
        if current:
            messages.append(b"\r".join(current) + b"\r")
        return [m if m.rstrip(b"\r").rsplit(b"\r", 1)[-1][:1] == b"L" else m + b"L|1|N\r" for m in messages]
    data = data.replace(b"\x0b", b"").replace(b"\x1c", b"").replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    parts = re.split(rb"(?=MSH\|)", data)
    return [p.strip(b"\r") + b"\r" for p in parts if p.strip(b"\r")]
