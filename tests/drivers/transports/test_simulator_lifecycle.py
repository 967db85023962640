"""A simulator started by another process (``lis demo``) ends when that process is gone."""

from __future__ import annotations

import asyncio
import os

from tests.conftest import free_port
from tests.drivers.transports.helpers import simulate


def test_simulator_exits_when_its_parent_is_gone() -> None:
    # nothing listens on the port: the simulator would retry for ever; the parent "is gone" (another pid)
    report = asyncio.run(asyncio.wait_for(
        simulate(profile="generic-astm", to=f"tcp://127.0.0.1:{free_port()}", count=0,
                 parent_pid=os.getppid() + 1_000_000), 10))
    assert [e["event"] for e in report][-2:] == ["parent-gone", "done"]
    assert not [e for e in report if e["event"] == "acked"]
