"""MLLP over TLS: the LIS listens with a certificate; an analyser connects with TLS and gets its AA."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.hl7.session import Hl7Session
from drivers.profile import get_profile
from drivers.transports.instrument import InstrumentChannel, InstrumentLink
from drivers.transports.tcp import tls_context
from drivers.wiring import open_journal
from lis.context import LisContext
from tests.drivers.transports.helpers import instrument, results
from tests.drivers.transports.test_hl7_session import msa, oru


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_mllp_over_tls(ctx: LisContext, tmp_path: Path) -> None:
    cert, key = tmp_path / "lis.pem", tmp_path / "lis.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    cfg = instrument(ctx, "bs-1")
    server_tls = tls_context(server=True, cert=str(cert), key=str(key))
    client_tls = tls_context(server=False, ca=str(cert))

    async def main() -> bytes:
        journal = open_journal(ctx, worker="thread")
        channel = InstrumentChannel(cfg, replace(get_profile("generic-hl7")), ctx.ingest, journal, ctx.status, ctx.db)
        link = InstrumentLink(channel, Hl7Session, tls=server_tls)
        await link.start()
        try:
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                r, w = await asyncio.open_connection("127.0.0.1", cfg.port)  # plain TCP is not served
                w.write(b"\x0b" + oru("PLAIN", "S0", [("GLU", "1")]) + b"\x1c\r")
                await asyncio.wait_for(r.readuntil(b"\x1c\r"), 5)
            reader, writer = await asyncio.open_connection("127.0.0.1", cfg.port, ssl=client_tls)
            writer.write(b"\x0b" + oru("TLS-1", "S1", [("GLU", "5.5")]) + b"\x1c\r")
            reply = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
            writer.close()
            await channel.processor.join()
            return reply
        finally:
            await link.stop()
            journal.close()

    reply = asyncio.run(main())
    assert msa(reply) == ("AA", "TLS-1")
    assert [r.accession for r in results(ctx)] == ["S1"]
