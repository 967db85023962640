"""Benchmark: HL7 v2 inbound parsing of a 20-OBX ORU^R01, ours against python-hl7 and hl7apy.

Prints messages per second for
* ``parse_hl7``: our full path, bytes -> ``InstrumentReport`` with profile mapping;
* ``parse_message``: our low-level parser alone, and with every OBX leaf read (the work a report does);
* ``hl7.parse`` (python-hl7) and ``hl7apy.parser.parse_message``, on the same bytes in the same run,
and the ratios (targets: parse_hl7 >= 1x python-hl7, >= 20x hl7apy).

Run: ``.venv/bin/python bench/hl7_parse.py [seconds-per-case]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import hl7 as python_hl7
from hl7apy.parser import parse_message as hl7apy_parse

from drivers.hl7.message import parse_message
from drivers.hl7.report import parse_hl7
from drivers.profile import get_profile

ANALYTES = [
    ("6690-2", "WBC", "7.35", "10*9/L", "4.00-10.00"),
    ("704-7", "BAS#", "0.02", "10*9/L", "0.00-0.10"),
    ("706-2", "BAS%", "0.3", "%", "0.0-1.0"),
    ("751-8", "NEU#", "4.10", "10*9/L", "2.00-7.00"),
    ("770-8", "NEU%", "55.8", "%", "50.0-70.0"),
    ("711-2", "EOS#", "0.15", "10*9/L", "0.02-0.50"),
    ("713-8", "EOS%", "2.0", "%", "0.5-5.0"),
    ("731-0", "LYM#", "2.50", "10*9/L", "0.80-4.00"),
    ("736-9", "LYM%", "34.0", "%", "20.0-40.0"),
    ("742-7", "MON#", "0.58", "10*9/L", "0.12-1.20"),
    ("5905-5", "MON%", "7.9", "%", "3.0-12.0"),
    ("789-8", "RBC", "4.52", "10*12/L", "3.50-5.50"),
    ("718-7", "HGB", "138", "g/L", "110-160"),
    ("4544-3", "HCT", "41.2", "%", "37.0-54.0"),
    ("787-2", "MCV", "91.2", "fL", "80.0-100.0"),
    ("785-6", "MCH", "30.5", "pg", "27.0-34.0"),
    ("786-4", "MCHC", "335", "g/L", "320-360"),
    ("788-0", "RDW-CV", "12.9", "%", "11.0-16.0"),
    ("777-3", "PLT", "256", "10*9/L", "100-300"),
    ("32623-1", "MPV", "9.6", "fL", "6.5-12.0"),
]


def message() -> bytes:
    """A Mindray-BC-like ORU^R01 v2.5.1 with 20 OBX (HL7 v2.5.1 7.3.1), UTF-8 patient name."""
    segments = [
        "MSH|^~\\&|Mindray|BC-6800|LIS|LAB|20240315093000||ORU^R01^ORU_R01|1052|P|2.5.1||||||UNICODE UTF-8",
        "PID|1||BN2024-0315^^^BV^MR||Nông^Hoa^Thị||19850412|F",
        "PV1|1|O|KHOA NOI",
        "OBR|1||24031500123|00001^Automated Count^99MRC|||20240315092512|||||||20240315091000",
    ]
    for k, (code, name, value, unit, rng) in enumerate(ANALYTES, start=1):
        flag = "N" if k % 5 else "H~A"
        segments.append(
            f"OBX|{k}|NM|{code}^{name}^LN||{value}|{unit}|{rng}|{flag}|||F|||20240315092512||admin||BC-6800"
        )
    return ("\r".join(segments) + "\r").encode("utf-8")


def rate(func: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``func``, measured for about ``seconds``."""
    func()  # warm-up (imports, caches)
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        func()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 1.0
    raw = message()
    text = raw.decode("utf-8")
    profile = get_profile("mindray-bc")
    report = parse_hl7(raw, profile)
    assert report.observation_count == 20, report.observation_count

    def low_level_all_leaves() -> None:
        msg = parse_message(raw)
        for obx in msg.segments("OBX"):
            for n in (2, 3, 5, 6, 7, 8, 11, 14, 16, 18):
                obx.value(n)

    cases: dict[str, Callable[[], object]] = {
        "ours parse_hl7 (full report)": lambda: parse_hl7(raw, profile),
        "ours parse_message": lambda: parse_message(raw),
        "ours parse_message + OBX leaves": low_level_all_leaves,
        "python-hl7 hl7.parse": lambda: python_hl7.parse(text),
        "hl7apy parse_message": lambda: hl7apy_parse(text),
    }
    results = {name: rate(func, seconds if "hl7apy" not in name else max(seconds, 2.0)) for name, func in cases.items()}
    print(f"HL7 v2 ORU^R01, 20 OBX, {len(raw)} bytes; about {seconds:g} s per case")
    for name, per_second in results.items():
        print(f"  {name:34s} {per_second:10.0f} msg/s")
    ours = results["ours parse_hl7 (full report)"]
    low = results["ours parse_message"]
    pyhl7 = results["python-hl7 hl7.parse"]
    apy = results["hl7apy parse_message"]
    print(f"  parse_hl7 / python-hl7     = {ours / pyhl7:6.1f}x  (target >= 1x)")
    print(f"  parse_hl7 / hl7apy         = {ours / apy:6.1f}x  (target >= 20x)")
    print(f"  parse_message / python-hl7 = {low / pyhl7:6.1f}x")
    print(f"  parse_message / hl7apy     = {low / apy:6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
