"""ASTM links over real loopback TCP sockets, in process: journal before ACK, host query, faults, quarantine."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from drivers.astm.framing import frame_message
from drivers.profile import get_profile
from drivers.simulator.sources import Sample
from lis.context import LisContext
from lis.models import RawMessageStatus
from lis.services.spool import SpoolEntry, SpoolItem
from tests.drivers.transports.helpers import (
    instrument,
    journal,
    make_orders,
    results,
    running_link,
    settle,
    simulate,
)
from tests.lis.astm_fixtures import astm_message

ENQ, EOT, ACK, NAK = b"\x05", b"\x04", b"\x06", b"\x15"


async def _read_exactly(reader: asyncio.StreamReader, n: int = 1, timeout: float = 5) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), timeout)


def test_results_land_in_the_database_and_status_is_reported(ctx: LisContext) -> None:
    make_orders(ctx, {"A1": ["GLU", "NA"], "A2": ["UREA", "CREA", "ALT"]})
    cfg = instrument(ctx, "xn-1")

    async def main() -> list[dict[str, object]]:
        async with running_link(ctx, cfg) as link:
            report = await simulate(profile="generic-astm", to=f"tcp://127.0.0.1:{cfg.port}", count=2,
                                    samples=[Sample("A1", ("GLU", "NA")), Sample("A2", ("UREA", "CREA", "ALT"))])
            await settle(link)
            assert ctx.status.snapshot()["xn-1"]["messages"] == 2
            return report

    report = asyncio.run(main())
    assert [e["id"] for e in report if e["event"] == "acked"] == ["SIM-1-1", "SIM-1-2"]
    stored = {(r.accession, r.test_code, r.status) for r in results(ctx)}
    assert stored == {("A1", "GLU", "received"), ("A1", "NA", "received"), ("A2", "UREA", "received"),
                      ("A2", "CREA", "received"), ("A2", "ALT", "received")}
    assert [j.status for j in journal(ctx)] == ["processed", "processed"]


def test_host_query_gets_the_pending_orders_and_unknown_gets_no_order(ctx: LisContext) -> None:
    make_orders(ctx, {"Q1": ["GLU", "UREA"]}, priority="stat")
    cfg = instrument(ctx, "xn-1")

    async def main() -> list[dict[str, object]]:
        async with running_link(ctx, cfg) as link:
            report = await simulate(profile="generic-astm", to=f"tcp://127.0.0.1:{cfg.port}", count=2, query=True,
                                    samples=[Sample("Q1", ("NA",)), Sample("NOPE", ("NA",))])
            await settle(link)
            return report

    report = asyncio.run(main())
    answers = {e["specimen"]: e["tests"] for e in report if e["event"] == "answer"}
    assert answers == {"Q1": ["GLU", "UREA"], "NOPE": []}
    # the analyser ran what the LIS asked: results for the ordered tests, matched
    assert {(r.accession, r.test_code, r.status) for r in results(ctx) if r.accession == "Q1"} == {
        ("Q1", "GLU", "received"), ("Q1", "UREA", "received")}
    out = journal(ctx, direction="out")
    assert len(out) == 2 and b"O|1|Q1" in out[0].data and b"^^^GLU\\^^^UREA" in out[0].data
    assert b"|S|" in out[0].data  # stat priority in O-6
    assert b"Nong" not in out[0].data or b"Hoa" in out[0].data


def test_faults_bad_checksum_duplicate_frame_and_lost_ack_store_each_message_once(ctx: LisContext) -> None:
    make_orders(ctx, {"F1": ["GLU"], "F2": ["NA"], "F3": ["K"]})
    cfg = instrument(ctx, "xn-1")

    async def main() -> list[dict[str, object]]:
        async with running_link(ctx, cfg) as link:
            report = await simulate(profile="generic-astm", to=f"tcp://127.0.0.1:{cfg.port}", count=3,
                                    reply_timeout=0.5, faults={"bad-checksum", "duplicate-frame", "drop-ack"},
                                    samples=[Sample("F1", ("GLU",)), Sample("F2", ("NA",)), Sample("F3", ("K",))])
            await settle(link)
            return report

    report = asyncio.run(main())
    assert len([e for e in report if e["event"] == "acked"]) == 3
    stored = sorted((r.accession, r.test_code) for r in results(ctx) if r.status == "received")
    assert stored == [("F1", "GLU"), ("F2", "NA"), ("F3", "K")]
    assert ctx.status.snapshot()["xn-1"]["errors"] >= 1  # the NAKed frame is visible on the instruments page


def test_incomplete_transfers_are_quarantined_and_the_line_keeps_serving(ctx: LisContext) -> None:
    cfg = instrument(ctx, "xn-1")
    good = frame_message(astm_message("G1", [("GLU", "5.5", "mmol/L")]))
    partial = frame_message(b"H|\\^&\rP|1\rO|1|X1||^^^GLU\rR|1|^^^GLU|5.5\r")  # no L record

    async def main() -> None:
        async with running_link(ctx, cfg) as link:
            reader, writer = await asyncio.open_connection("127.0.0.1", cfg.port)
            writer.write(b"garbage\x00\xff" + ENQ)
            assert await _read_exactly(reader) == ACK
            for frame in partial:
                writer.write(frame)
                assert await _read_exactly(reader) == ACK
            writer.write(EOT + ENQ)  # EOT without L: aborted; back-to-back ENQ in the same read
            assert await _read_exactly(reader) == ACK
            writer.write(frame_message(b"H|\\^&\rP|1\r")[0])
            assert await _read_exactly(reader) == ACK
            writer.write(ENQ)  # ENQ during a transfer: restarts it
            assert await _read_exactly(reader) == ACK
            for frame in good:
                writer.write(frame)
                assert await _read_exactly(reader) == ACK
            writer.write(EOT)
            await writer.drain()
            await settle(link, 0.2)
            writer.close()

    asyncio.run(main())
    errors = journal(ctx, RawMessageStatus.ERROR)
    reasons = [e.error for e in errors]
    assert any("EOT before the terminator" in r for r in reasons)
    assert any("ENQ during a transfer" in r for r in reasons)
    assert any(b"X1" in e.data for e in errors if "EOT before" in e.error)
    assert [(r.accession, r.test_code) for r in results(ctx)] == [("G1", "GLU")]


def test_receiver_timeout_mid_message_stores_nothing_as_complete(ctx: LisContext) -> None:
    cfg = instrument(ctx, "xn-1")
    frames = frame_message(astm_message("T1", [("GLU", "5.5", "mmol/L")]), text_size=20)
    profile = get_profile("generic-astm")

    async def main() -> None:
        # LIS1-A receiver timeout is 30 s; the profile shortens it for the test
        async with running_link(ctx, cfg, extra={**profile.extra, "receive_timeout": 0.3}) as link:
            reader, writer = await asyncio.open_connection("127.0.0.1", cfg.port)
            writer.write(ENQ)
            assert await _read_exactly(reader) == ACK
            writer.write(frames[0])
            assert await _read_exactly(reader) == ACK
            await asyncio.sleep(0.8)
            await settle(link)
            writer.write(frames[1])  # too late: the transfer is over, the line is neutral; ignored
            await asyncio.sleep(0.1)
            writer.close()

    asyncio.run(main())
    assert results(ctx) == []
    errors = journal(ctx, RawMessageStatus.ERROR)
    assert len(errors) == 1 and "receiver timeout" in errors[0].error and b"T1" not in errors[0].data


def test_journal_failure_naks_the_last_frame_and_the_resend_is_stored(ctx: LisContext) -> None:
    cfg = instrument(ctx, "xn-1")
    frames = frame_message(astm_message("J1", [("GLU", "5.5", "mmol/L")]), text_size=40)
    calls = {"n": 0}

    async def main() -> None:
        async with running_link(ctx, cfg) as link:
            spool = link.channel.journal.spool
            real = spool.append

            def flaky(items: list[SpoolItem], *, delete: Sequence[int] = ()) -> list[SpoolEntry]:
                calls["n"] += 1  # the spool's disk refuses one commit
                if calls["n"] == 1:
                    raise OSError("disk full")
                return real(items, delete=delete)

            spool.append = flaky  # type: ignore[method-assign]
            reader, writer = await asyncio.open_connection("127.0.0.1", cfg.port)
            writer.write(ENQ)
            assert await _read_exactly(reader) == ACK
            for frame in frames[:-1]:
                writer.write(frame)
                assert await _read_exactly(reader) == ACK
            writer.write(frames[-1])
            assert await _read_exactly(reader) == NAK  # not journaled: not acknowledged
            writer.write(frames[-1])
            assert await _read_exactly(reader) == ACK
            writer.write(EOT)
            await settle(link, 0.1)
            writer.close()

    asyncio.run(main())
    assert [(r.accession, r.test_code) for r in results(ctx)] == [("J1", "GLU")]
    assert calls["n"] == 2


def test_several_connections_at_once_each_with_its_own_link(ctx: LisContext) -> None:
    cfg = instrument(ctx, "xn-1")

    async def main() -> list[list[dict[str, object]]]:
        async with running_link(ctx, cfg) as link:
            runs = await asyncio.gather(*(
                simulate(profile="generic-astm", to=f"tcp://127.0.0.1:{cfg.port}", count=5, seed=k,
                         tests_per_message=4) for k in range(4)))
            await settle(link)
            return runs

    runs = asyncio.run(main())
    assert all(len([e for e in r if e["event"] == "acked"]) == 5 for r in runs)
    assert len(results(ctx)) == 4 * 5 * 4


def test_push_mode_downloads_pending_orders(ctx: LisContext) -> None:
    from drivers.simulator.peers import AstmPeerSession
    from drivers.transports.stream import AsyncioStream
    from drivers.wiring import LINKS, push_orders

    make_orders(ctx, {"P1": ["GLU"], "P2": ["NA", "K"]})
    cfg = instrument(ctx, "xn-1")

    async def main() -> tuple[int, bytes]:
        async with running_link(ctx, cfg) as link:
            LINKS["xn-1"] = link
            reader, writer = await asyncio.open_connection("127.0.0.1", cfg.port)
            analyser = AstmPeerSession(AsyncioStream(reader, writer))
            task = asyncio.create_task(analyser.run())
            while not link.channel.sessions:
                await asyncio.sleep(0.01)
            count = await push_orders(ctx, "xn-1")
            received = await asyncio.wait_for(analyser.received.get(), 5)
            writer.close()
            await task
            del LINKS["xn-1"]
            return count, received

    count, received = asyncio.run(main())
    assert count == 2
    assert b"O|1|P1||^^^GLU" in received and b"^^^NA\\^^^K" in received and b"|O" in received


def test_a_transfer_over_the_size_limit_is_cut_and_quarantined(ctx: LisContext) -> None:
    cfg = instrument(ctx, "xn-1", max_message_bytes=4000)
    big = frame_message(astm_message("BIG", [("GLU", "5.5", "mmol/L")] * 200), text_size=200)
    good = frame_message(astm_message("OK", [("GLU", "5.5", "mmol/L")]))

    async def main() -> None:
        async with running_link(ctx, cfg) as link:
            reader, writer = await asyncio.open_connection("127.0.0.1", cfg.port)
            writer.write(ENQ)
            assert await _read_exactly(reader) == ACK
            acked = 0
            for frame in big:
                writer.write(frame)
                try:
                    await _read_exactly(reader, timeout=0.3)
                    acked += 1
                except TimeoutError:
                    break  # the LIS stopped answering: the transfer was cut
            assert 0 < acked < len(big)
            writer.write(EOT + ENQ)
            assert await _read_exactly(reader) == ACK
            for frame in good:
                writer.write(frame)
                assert await _read_exactly(reader) == ACK
            writer.write(EOT)
            await settle(link, 0.1)
            writer.close()

    asyncio.run(main())
    errors = journal(ctx, RawMessageStatus.ERROR)
    assert len(errors) == 1 and "max_message_bytes" in errors[0].error
    assert {r.accession for r in results(ctx)} == {"OK"}


def test_simulator_garbage_and_oversize_faults_are_survived(ctx: LisContext) -> None:
    if ctx.db.dialect != "sqlite":
        pytest.skip("protocol robustness; one database backend is enough")
    make_orders(ctx, {"G1": ["GLU"], "G2": ["NA"]})
    cfg = instrument(ctx, "xn-1", max_message_bytes=50_000)

    async def main() -> list[dict[str, object]]:
        async with running_link(ctx, cfg) as link:
            report = await simulate(profile="generic-astm", to=f"tcp://127.0.0.1:{cfg.port}", count=2,
                                    reply_timeout=0.5, faults={"garbage", "oversize"},
                                    samples=[Sample("G1", ("GLU",)), Sample("G2", ("NA",))])
            await settle(link)
            return report

    report = asyncio.run(main())
    assert len([e for e in report if e["event"] == "acked"]) == 2
    assert sorted((r.accession, r.test_code) for r in results(ctx)) == [("G1", "GLU"), ("G2", "NA")]
    assert "max_message_bytes" in ctx.status.snapshot()["xn-1"]["last_error"]
