"""kill -9 of ``lis serve`` while a simulator sends 500 messages with retry: nothing acknowledged is lost or doubled.

ARCHITECTURE.md principles 2 and 3: every message the analyser saw acknowledged (ASTM: last frame ACKed; HL7:
MSA AA) is in the journal exactly once as a processed message after the restarts, with exactly its results;
resends of messages whose ACK was lost are journaled as duplicates and create nothing.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from tests.drivers.e2e.lis_process import LisProcess, start_simulator

MESSAGES = 500
TESTS = 3


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "profile", "timeouts"), [
    ("astm", "generic-astm", ["--reply-timeout", "1"]),
    ("hl7", "generic-hl7", ["--ack-timeout", "1"]),
])
def test_kill9_at_random_points_loses_and_doubles_nothing(tmp_path: Path, protocol: str, profile: str,
                                                           timeouts: list[str]) -> None:
    lis = LisProcess(tmp_path).write([{"name": "an-1", "profile": profile, "protocol": protocol}])
    lis.seed()
    lis.start()
    rng = random.Random(protocol)
    sim = start_simulator("--profile", profile, "--to", f"tcp://127.0.0.1:{lis.ports['an-1']}", "--count",
                          str(MESSAGES), "--tests", str(TESTS), "--rate", "80", "--seed", "9", *timeouts)
    kills = 0
    try:
        while sim.poll() is None and kills < 3:
            time.sleep(rng.uniform(0.4, 1.5))
            lis.kill9()
            kills += 1
            lis.start()
        out, err = sim.communicate(timeout=120)
    finally:
        if sim.poll() is None:
            sim.kill()
    assert sim.returncode == 0, err
    assert kills >= 2, "the simulator finished before the LIS could be killed twice"
    events = [json.loads(line) for line in out.splitlines()]
    acked = [e["id"] for e in events if e["event"] == "acked"]
    assert len(acked) == MESSAGES and len(set(acked)) == MESSAGES
    assert any(e["event"] == "retry" for e in events), "no kill landed while a message was in flight"

    deadline = time.monotonic() + 30
    while lis.query("SELECT count(*) FROM raw_message WHERE status = 'received' AND direction = 'in'")[0][0]:
        assert time.monotonic() < deadline, "journal entries left unprocessed"
        time.sleep(0.2)
    lis.stop()

    rows = lis.query("SELECT control_id, status, id FROM raw_message WHERE direction = 'in'")
    stored: dict[str, list[int]] = {}
    for control_id, status, raw_id in rows:
        if status in ("processed", "unmatched"):
            stored.setdefault(control_id, []).append(raw_id)
        else:
            assert status == "duplicate", (control_id, status)
    missing = [m for m in acked if len(stored.get(m, [])) != 1]
    assert not missing, f"acknowledged but not stored exactly once: {missing[:5]}"
    per_message = dict(lis.query("SELECT raw_message_id, count(*) FROM result GROUP BY raw_message_id"))
    assert all(per_message.get(stored[m][0]) == TESTS for m in acked)
    assert lis.query("SELECT count(*) FROM result")[0][0] == MESSAGES * TESTS
