"""Serial end to end: ``lis serve`` on one end of a socat pty pair, ``lis simulate`` on the other."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import requires_socat
from tests.drivers.e2e.lis_process import LisProcess, acked, simulate
from tests.drivers.transports.helpers import SocatPair


@requires_socat
def test_serial_8n1_simulator_against_lis_serve(tmp_path: Path) -> None:
    pair = SocatPair(tmp_path).start()
    lis = LisProcess(tmp_path).write([{"name": "xp-1", "profile": "sysmex-xp", "protocol": "astm",
                                       "transport": "serial", "device": pair.lis, "baudrate": 19200}])
    lis.seed()
    try:
        lis.start()
        time.sleep(0.3)  # the LIS opens (and flushes) the port
        report = simulate("--profile", "sysmex-xp", "--to", f"serial://{pair.analyser}?baud=19200", "--count", "3",
                          "--tests", "5", "--reply-timeout", "3")
        done = acked(report)
        assert len(done) == 3
        deadline = time.monotonic() + 10
        while lis.query("SELECT count(*) FROM result WHERE instrument = 'xp-1'")[0][0] < 15:
            assert time.monotonic() < deadline, "results did not arrive"
            time.sleep(0.1)
        specimens = {row[0] for row in lis.query("SELECT DISTINCT accession FROM result")}
        assert specimens == {e["specimen"] for e in done}
    finally:
        lis.stop()
        pair.stop()
