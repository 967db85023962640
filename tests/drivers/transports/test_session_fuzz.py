"""Random bytes into live ASTM and HL7 sessions: no crash, no hang, and a good message still gets through."""

from __future__ import annotations

import asyncio
import random

import pytest

from drivers.astm.framing import frame_message
from drivers.astm.session import AstmSession
from drivers.hl7.session import Hl7Session
from drivers.profile import get_profile
from drivers.transports.instrument import InstrumentChannel
from drivers.wiring import open_journal
from lis.context import LisContext
from tests.drivers.transports.helpers import results
from tests.drivers.transports.test_hl7_session import oru
from tests.lis.astm_fixtures import astm_message

ALPHABET = b"\x02\x03\x04\x05\x06\x0b\x0d\x0a\x15\x17\x1c|^&\\MSHPORLQ0123456789ABCDEFxyz\xff\x00 "


class MemoryStream:
    """An in-memory :class:`ByteStream`: the test pushes chunks, the session's writes are collected."""

    peer = "memory"

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.written = bytearray()

    async def read(self) -> bytes:
        return await self.incoming.get()

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        self.incoming.put_nowait(b"")


def _noise(rng: random.Random) -> bytes:
    return bytes(rng.choice(ALPHABET) for _ in range(rng.randint(1, 300)))


def test_random_input_then_a_good_message(ctx: LisContext) -> None:
    if ctx.db.dialect != "sqlite":
        pytest.skip("parser robustness; one backend is enough")
    rng = random.Random(20261126)

    async def run(protocol: str) -> bytes:
        name = "xn-1" if protocol == "astm" else "bs-1"
        config = ctx.config.instrument(name)
        assert config is not None
        journal = open_journal(ctx, worker="thread")
        channel = InstrumentChannel(config, get_profile(config.profile), ctx.ingest, journal, ctx.status, ctx.db)
        stream = MemoryStream()
        session = (AstmSession if protocol == "astm" else Hl7Session)(channel, stream)
        task = asyncio.create_task(session.run())
        for _ in range(2000):
            stream.incoming.put_nowait(_noise(rng))
        stream.incoming.put_nowait(b"\x04\x1c\r")  # end whatever transfer / block the noise opened
        await asyncio.sleep(0.2)
        stream.written.clear()
        if protocol == "astm":
            for frame in [b"\x05", *frame_message(astm_message("FUZZ-OK", [("GLU", "5.5", "mmol/L")]))]:
                stream.incoming.put_nowait(frame)
                await asyncio.sleep(0.05)
            stream.incoming.put_nowait(b"\x04")
        else:
            stream.incoming.put_nowait(b"\x0b" + oru("FUZZ-OK", "FUZZ-OK", [("GLU", "5")]) + b"\x1c\r")
        await stream.close()  # end of stream after everything above: the session handles all of it first
        await asyncio.wait_for(task, 60)
        await channel.processor.join()
        journal.close()
        return bytes(stream.written)

    astm_written = asyncio.run(run("astm"))
    assert astm_written.count(b"\x06") >= 2 and b"\x15" not in astm_written
    hl7_written = asyncio.run(run("hl7"))
    assert b"MSA|AA|FUZZ-OK" in hl7_written
    assert {("bs-1", "FUZZ-OK"), ("xn-1", "FUZZ-OK")} <= {(r.instrument, r.accession) for r in results(ctx)}
