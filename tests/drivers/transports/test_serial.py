"""ASTM over a serial line: a socat pty pair as the null-modem cable, the simulator as the analyser."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.simulator.sources import Sample
from lis.context import LisContext
from tests.conftest import requires_socat
from tests.drivers.transports.helpers import (
    SocatPair,
    instrument,
    make_orders,
    results,
    running_link,
    settle,
    simulate,
)


@requires_socat
def test_serial_7e1_results_and_reconnect_after_the_port_disappears(ctx: LisContext, tmp_path: Path) -> None:
    make_orders(ctx, {"R1": ["GLU"], "R2": ["NA", "K"]})
    pair = SocatPair(tmp_path).start()
    cfg = instrument(ctx, "xn-1", transport="serial", device=pair.lis, baudrate=9600, bytesize=7, parity="E",
                     port=None)
    to = f"serial://{pair.analyser}?baud=9600&bytesize=7&parity=E"

    async def main() -> tuple[list[dict[str, object]], list[dict[str, object]], str]:
        async with running_link(ctx, cfg) as link:
            link.transport.retry_interval = 0.2  # type: ignore[union-attr]
            await _connected(ctx)
            first = await simulate(profile="generic-astm", to=to, count=1, samples=[Sample("R1", ("GLU",))],
                                   reply_timeout=3)
            await settle(link)
            pair.stop()  # the cable is pulled: the port disappears
            await asyncio.sleep(0.5)
            state_while_gone = ctx.status.snapshot()["xn-1"]["state"]
            pair.start()
            await _connected(ctx)
            second = await simulate(profile="generic-astm", to=to, count=1, seed=2,
                                    samples=[Sample("R2", ("NA", "K"))], reply_timeout=3)
            await settle(link)
            return first, second, state_while_gone

    try:
        first, second, state_while_gone = asyncio.run(main())
    finally:
        pair.stop()
    assert [e["event"] for e in first if e["event"] == "acked"] == ["acked"]
    assert [e["event"] for e in second if e["event"] == "acked"] == ["acked"]
    assert state_while_gone in ("disconnected", "connecting")
    assert sorted((r.accession, r.test_code) for r in results(ctx)) == [("R1", "GLU"), ("R2", "K"), ("R2", "NA")]


async def _connected(ctx: LisContext) -> None:
    for _ in range(100):
        if ctx.status.snapshot().get("xn-1", {}).get("state") == "connected":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the LIS never opened the serial port")
