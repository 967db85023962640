"""Benchmark: `lis demo` from command to healthy (target < 5 s after install).

Runs the demo twice in a fresh data dir (first run seeds the database, second reuses it) and reports
the seconds until ``GET /api/v1/health`` answers 200. Baseline in the same run: the bare interpreter
start plus ``import lis.cli.server`` (the floor any Python LIS pays), as a ratio.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_to_healthy(data_dir: Path) -> float:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lis.cli.main", "demo", "--data-dir", str(data_dir),
                             "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("lis demo exited")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
            if time.perf_counter() - start > 60:
                raise RuntimeError("not healthy after 60 s")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def import_floor() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import lis.cli.server, web.app"], cwd=REPO, check=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = time_to_healthy(Path(tmp) / "demo")
        second = time_to_healthy(Path(tmp) / "demo")
    floor = import_floor()
    print(f"lis demo to healthy: first run (creates and seeds) {first:.2f} s, second run {second:.2f} s "
          f"(target < 5 s)")
    print(f"baseline: interpreter + imports {floor:.2f} s; ratio first/baseline {first / floor:.1f}")


if __name__ == "__main__":
    main()
