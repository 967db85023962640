"""Benchmark: ORU^R01 build rate, fast path (:func:`interfaces.hl7_oru.build_oru`) vs hl7apy, in the same run.

For typical reports of 5, 10 and 20 OBX (numbers and text, flags, one result comment NTE, one SPM; also 5 OBX with
a signed PDF as OBX ED), each builder writes ``--count`` messages with different order numbers:

* hl7apy: :func:`interfaces.hl7_oru.build_oru_hl7apy` (build in STRICT mode + ``Message.validate()``);
* fast: :func:`interfaces.hl7_oru.build_oru` once the shape is validated (string assembly + hl7apy's value rules);
* first of a shape: ``build_oru`` on an empty shape cache (fast + hl7apy + byte comparison).

The outputs are checked to be byte-identical before timing. Usage: python bench/oru_build.py [--count 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interfaces.hl7_oru import OruOptions, build_oru, build_oru_hl7apy, shape_cache
from interfaces.report_data import ReportData
from tests.interfaces.oru_samples import sample_report

NOW = datetime(2026, 11, 26, 3, 5, tzinfo=UTC)
OPTIONS = OruOptions(receiving_facility="BV")
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 200  # ~50 kB, about the size of a one-page signed report

Builder = Callable[..., bytes]


def per_message_ms(build: Builder, reports: list[ReportData], pdf: bytes | None) -> float:
    started = time.perf_counter()
    for n, report in enumerate(reports):
        build(report, f"MSG-{n}", OPTIONS, now=NOW, pdf=pdf)
    return (time.perf_counter() - started) * 1000 / len(reports)


def first_of_shape_ms(report: ReportData, pdf: bytes | None, rounds: int = 5) -> float:
    total = 0.0
    for _ in range(rounds):
        shape_cache().clear()
        started = time.perf_counter()
        build_oru(report, "MSG-first", OPTIONS, now=NOW, pdf=pdf)
        total += time.perf_counter() - started
    return total * 1000 / rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200, help="messages per builder and report size")
    args = parser.parse_args()
    print(f"{'report':<18} {'hl7apy ms':>10} {'msg/s':>8} {'fast ms':>9} {'msg/s':>8} {'ratio':>7} "
          f"{'1st of shape ms':>16}")
    for lines, pdf in ((5, None), (10, None), (20, None), (5, PDF)):
        reports = [sample_report(lines, order=n) for n in range(1, args.count + 1)]
        first = first_of_shape_ms(reports[0], pdf)
        for n, report in enumerate(reports[:20]):
            assert build_oru(report, f"MSG-{n}", OPTIONS, now=NOW, pdf=pdf) == \
                   build_oru_hl7apy(report, f"MSG-{n}", OPTIONS, now=NOW, pdf=pdf)
        slow = per_message_ms(build_oru_hl7apy, reports[: max(20, args.count // 5)], pdf)
        fast = per_message_ms(build_oru, reports, pdf)
        label = f"{lines} OBX" + (" + PDF" if pdf else "")
        print(f"{label:<18} {slow:>10.2f} {1000 / slow:>8.0f} {fast:>9.3f} {1000 / fast:>8.0f} {slow / fast:>6.0f}x "
              f"{first:>16.1f}")


if __name__ == "__main__":
    main()
