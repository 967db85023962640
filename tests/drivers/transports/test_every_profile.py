"""The simulator speaks every shipped profile, and the LIS takes what it says (journaled, parsed, stored)."""

from __future__ import annotations

import asyncio

import pytest

from drivers.profile import available_profiles, get_profile
from lis.context import LisContext
from lis.models import RawMessageStatus
from tests.drivers.transports.helpers import instrument, journal, results, running_link, simulate


@pytest.mark.parametrize("name", sorted(available_profiles()))
def test_simulated_analyser_is_understood(ctx: LisContext, name: str) -> None:
    if ctx.db.dialect != "sqlite":
        pytest.skip("protocol coverage; the database backends are covered by the other link tests")
    profile = get_profile(name)
    base = "xn-1" if profile.protocol == "astm" else "bs-1"
    cfg = instrument(ctx, base, profile=name)

    async def main() -> list[dict[str, object]]:
        async with running_link(ctx, cfg):
            return await simulate(profile=name, to=f"tcp://127.0.0.1:{cfg.port}", count=3, qc_every=3,
                                  tests_per_message=4, reply_timeout=3, ack_timeout=3)

    report = asyncio.run(main())
    assert len([e for e in report if e["event"] == "acked"]) == 3
    entries = journal(ctx)
    assert len(entries) == 3 and all(e.status != RawMessageStatus.ERROR for e in entries), [
        e.error for e in entries]
    stored = results(ctx)
    assert len(stored) == sum(int(e["results"]) for e in report if e["event"] == "acked")  # type: ignore[call-overload]
    assert any(r.is_qc for r in stored)  # the QC sample was recognised by the profile
