"""Helpers for the in-process link tests: orders in the database, a running instrument link."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date
from typing import Any

from sqlmodel import select

from drivers.astm.session import AstmSession
from drivers.hl7.session import Hl7Session
from drivers.profile import Profile, get_profile
from drivers.simulator.runner import SimOptions, Simulator
from drivers.transports.instrument import InstrumentChannel, InstrumentLink
from drivers.wiring import open_journal
from lis.config import InstrumentConfig
from lis.context import LisContext
from lis.models import RawMessage, Result
from lis.services.catalog import load_snapshot
from lis.services.orders import OrderRequest, create_order
from lis.services.patients import PatientData
from tests.conftest import free_port


def make_orders(ctx: LisContext, specimens: dict[str, list[str]], *, priority: str = "routine") -> None:
    """One order per specimen id with the given LIS test codes."""
    with ctx.db.write() as session:
        catalog = load_snapshot(session)
        for i, (sid, tests) in enumerate(specimens.items(), start=1):
            patient = PatientData(name="Nông Thị Hoa", sex="F", birth_date=date(1980, 5, 17), mrn=f"MRN{sid}")
            create_order(session, catalog, OrderRequest(patient=patient, specimen_id=sid, tests=tests,
                                                        priority=priority, source="test"), "test")
            assert i


def instrument(ctx: LisContext, name: str, **changes: Any) -> InstrumentConfig:
    base = ctx.config.instrument(name)
    assert base is not None
    changes.setdefault("port", free_port())
    return base.model_copy(update=changes)


@asynccontextmanager
async def running_link(ctx: LisContext, config: InstrumentConfig, profile: Profile | None = None, *,
                       worker: str = "thread", **profile_changes: Any) -> AsyncIterator[InstrumentLink]:
    """Start one instrument link (as ``lis serve`` would; processing on a thread of this process unless
    ``worker="process"``) and stop it afterwards."""
    prof = profile or get_profile(config.profile)
    if profile_changes:
        prof = replace(prof, **profile_changes)
    journal = open_journal(ctx, worker=worker)
    channel = InstrumentChannel(config, prof, ctx.ingest, journal, ctx.status, ctx.db)
    link = InstrumentLink(channel, AstmSession if config.protocol == "astm" else Hl7Session, backoff=0.1)
    await journal.start()
    await link.start()
    try:
        yield link
    finally:
        await channel.processor.join()
        await link.stop()
        journal.close()


async def simulate(**kwargs: Any) -> list[dict[str, Any]]:
    """Run the simulator in-process; return its JSON-lines report as dicts."""
    out = io.StringIO()
    await Simulator(SimOptions(**kwargs), out).run()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def results(ctx: LisContext, instrument_name: str | None = None) -> list[Result]:
    with ctx.db.read() as session:
        stmt = select(Result)
        if instrument_name:
            stmt = stmt.where(Result.instrument == instrument_name)
        return list(session.exec(stmt).all())


def journal(ctx: LisContext, status: str | None = None, direction: str = "in") -> list[RawMessage]:
    with ctx.db.read() as session:
        stmt = select(RawMessage).where(RawMessage.direction == direction)
        if status:
            stmt = stmt.where(RawMessage.status == status)
        return list(session.exec(stmt.order_by(RawMessage.id)).all())


async def settle(link: InstrumentLink, seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)
    await link.channel.processor.join()


class SocatPair:
    """``socat -d -d pty,raw,echo=0,link=A pty,raw,echo=0,link=B``: a virtual null-modem cable."""

    def __init__(self, directory: Any) -> None:
        from pathlib import Path

        self.lis = str(Path(directory) / "lis-tty")
        self.analyser = str(Path(directory) / "analyser-tty")
        self.proc: Any = None

    def start(self) -> SocatPair:
        import os
        import subprocess
        import time

        self.proc = subprocess.Popen(
            ["socat", "-d", "-d", f"pty,raw,echo=0,link={self.lis}", f"pty,raw,echo=0,link={self.analyser}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not (os.path.exists(self.lis) and os.path.exists(self.analyser)):
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
