"""HL7 links over real loopback TCP, in process, with python-hl7 as the analyser where it fits."""

from __future__ import annotations

import asyncio
import random

import hl7
import hl7.mllp
import pytest
from hl7.client import MLLPClient

from drivers.simulator.sources import Sample
from lis.context import LisContext
from lis.models import RawMessageStatus
from tests.drivers.transports.helpers import (
    instrument,
    journal,
    make_orders,
    results,
    running_link,
    settle,
    simulate,
)

VT, FS = b"\x0b", b"\x1c"


def oru(control_id: str, specimen: str, tests: list[tuple[str, str]], charset: str = "UNICODE UTF-8",
        version: str = "2.5.1") -> bytes:
    segs = [f"MSH|^~\\&|BC-6800|LAB|LIS||20261126083000||ORU^R01|{control_id}|P|{version}||||||{charset}",
            "PID|1||PID1||Nông^Thị Hoa", f"OBR|1||{specimen}|CBC^CBC^99X|||20261126082000"]
    segs += [f"OBX|{i}|NM|{code}^{code}^99X||{value}|mmol/L|3.9-6.1|N|||F|||20261126082500"
             for i, (code, value) in enumerate(tests, start=1)]
    return ("\r".join(segs) + "\r").encode("utf-8")


def msa(reply: bytes) -> tuple[str, str]:
    message = hl7.parse(reply.decode("utf-8").strip("\x0b\x1c\r"))
    seg = message.segment("MSA")
    return str(seg[1]), str(seg[2])


async def _exchange(port: int, blocks: list[bytes], *, chunked: bool = False, prefix: bytes = b"",
                    expect: int | None = None) -> list[bytes]:
    """Write the blocks (in random chunks if asked) on one connection; read one reply per block."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = prefix + b"".join(VT + b + FS + b"\r" for b in blocks)
    rng = random.Random(3)
    if chunked:
        i = 0
        while i < len(data):
            n = rng.randint(1, 40)
            writer.write(data[i:i + n])
            await writer.drain()
            await asyncio.sleep(0)
            i += n
    else:
        writer.write(data)
    replies = []
    for _ in range(expect if expect is not None else len(blocks)):
        replies.append(await asyncio.wait_for(reader.readuntil(FS + b"\r"), 10))
    writer.close()
    return replies


def test_python_hl7_client_gets_aa_with_msa2_and_results_are_stored(ctx: LisContext) -> None:
    make_orders(ctx, {"H1": ["GLU", "NA"]})
    cfg = instrument(ctx, "bs-1")

    async def main() -> list[bytes]:
        async with running_link(ctx, cfg) as link:
            def send() -> list[bytes]:
                with MLLPClient("127.0.0.1", cfg.port) as client:
                    return [client.send_message(oru("CTRL-0001", "H1", [("GLU", "5.4"), ("NA", "140")])),
                            client.send_message(oru("CTRL-0002", "H1-X", [("K", "4.1")], version="2.3.1"))]

            replies = await asyncio.to_thread(send)
            await settle(link)
            return replies

    first, second = asyncio.run(main())
    assert msa(first) == ("AA", "CTRL-0001") and b"|2.5.1|" in first and b"UNICODE UTF-8" in first
    assert msa(second) == ("AA", "CTRL-0002") and b"|2.3.1|" in second  # version mirrored
    stored = {(r.accession, r.test_code, r.status) for r in results(ctx)}
    assert ("H1", "GLU", "received") in stored and ("H1", "NA", "received") in stored
    assert ("H1-X", "K", "unmatched") in stored  # unknown specimen: stored as unmatched, AA per profile


def test_random_chunks_several_messages_and_a_stray_prefix(ctx: LisContext) -> None:
    cfg = instrument(ctx, "bs-1")
    blocks = [oru(f"C{i}", f"S{i}", [("GLU", str(4 + i))]) for i in range(5)]

    async def main() -> list[bytes]:
        async with running_link(ctx, cfg) as link:
            replies = await _exchange(cfg.port, blocks, chunked=True, prefix=b"\r\n\x00noise")
            await settle(link)
            return replies

    replies = asyncio.run(main())
    assert [msa(r) for r in replies] == [("AA", f"C{i}") for i in range(5)]
    assert sorted(r.accession for r in results(ctx)) == [f"S{i}" for i in range(5)]


def test_bad_input_is_rejected_with_a_reason_kept_in_quarantine_and_the_listener_keeps_serving(
        ctx: LisContext) -> None:
    cfg = instrument(ctx, "bs-1", max_message_bytes=100_000)
    bad = [
        b"PID|1||X\rOBX|1|NM|GLU||5\r",  # no MSH
        b"MSH^~|\\&|A|B|||20260101||ORU^R01|W1|P|2.5.1\rPID|1\r",  # wrong field separator
        b"MSH|^~\\&|A|B|||20260101||ZZZ^Z99|U1|P|2.5.1\r",  # unknown message type
        oru("U8", "S1", [("GLU", "5")]).replace("Nông".encode(), b"N\xff\xfeng"),  # invalid UTF-8
        oru("NUL", "S1", [("GLU", "5.5")]).replace(b"|5.5|", b"|5.\x005|"),  # corrupted: a NUL in a value
    ]
    good = oru("OK1", "S9", [("GLU", "5.1")])
    huge = oru("BIG", "S1", [("GLU", "5")]) + b"NTE|1||" + b"x" * 10_000_000 + b"\r"  # 10 MB

    async def main() -> tuple[list[bytes], list[bytes]]:
        async with running_link(ctx, cfg) as link:
            replies = await _exchange(cfg.port, [*bad, good])
            big = await _exchange(cfg.port, [huge, good], expect=2)
            await settle(link)
            return replies, big

    replies, big = asyncio.run(main())
    codes = [msa(r) for r in replies]
    assert codes[0] == ("AR", "") and codes[1] == ("AR", "")
    assert codes[2] == ("AR", "U1") and b"unsupported message type" in replies[2]
    assert codes[3] == ("AR", "U8") and b"utf-8" in replies[3].lower()
    assert codes[4] == ("AR", "NUL") and b"NUL byte" in replies[4]
    assert codes[5] == ("AA", "OK1")
    assert msa(big[0])[0] == "AR" and msa(big[1]) == ("AA", "OK1")  # refused, connection kept
    errors = journal(ctx, RawMessageStatus.ERROR)
    assert len(errors) == 6
    assert errors[0].data.startswith(b"PID|1") and "no MSH" in errors[0].error
    assert any("larger than" in e.error for e in errors)
    assert {r.accession for r in results(ctx)} == {"S9"}


def test_truncated_block_is_dropped_after_the_idle_timeout(ctx: LisContext) -> None:
    cfg = instrument(ctx, "bs-1")

    async def main() -> bytes:
        async with running_link(ctx, cfg, extra={"idle_timeout": 0.3}) as link:  # 30 s by default
            reader, writer = await asyncio.open_connection("127.0.0.1", cfg.port)
            writer.write(VT + oru("T1", "S1", [("GLU", "5")])[:60])  # no FS: truncated
            await asyncio.sleep(0.7)
            writer.write(VT + oru("T2", "S2", [("GLU", "5")]) + FS + b"\r")
            reply = await asyncio.wait_for(reader.readuntil(FS + b"\r"), 5)
            await settle(link)
            writer.close()
            return reply

    reply = asyncio.run(main())
    assert msa(reply) == ("AA", "T2")
    assert [r.accession for r in results(ctx)] == ["S2"]
    assert "no end of block" in ctx.status.snapshot()["bs-1"]["last_error"]


def test_ae_profile_answers_ae_for_an_unknown_specimen_after_the_commit(ctx: LisContext) -> None:
    make_orders(ctx, {"K1": ["GLU"]})
    cfg = instrument(ctx, "bs-1")

    async def main() -> list[bytes]:
        async with running_link(ctx, cfg, accept_unknown_specimen="AE") as link:
            replies = await _exchange(cfg.port, [oru("E1", "K1", [("GLU", "5")]), oru("E2", "NOPE", [("GLU", "6")])])
            await settle(link)
            return replies

    ok, unknown = asyncio.run(main())
    assert msa(ok) == ("AA", "E1")
    assert msa(unknown) == ("AE", "E2") and b"unknown specimen NOPE" in unknown and b"ERR|" in unknown
    assert {(r.accession, r.status) for r in results(ctx)} == {("K1", "received"), ("NOPE", "unmatched")}


def test_law_query_gets_rsp_k11_then_oml_o33_and_mindray_query_gets_qck_and_dsr(ctx: LisContext) -> None:
    make_orders(ctx, {"L1": ["TSH", "FT4"], "M1": ["GLU", "UREA"]})
    law = instrument(ctx, "bs-1", profile="snibe-maglumi")
    mindray = instrument(ctx, "bs-1", profile="mindray-bs")

    async def main() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        async with running_link(ctx, law):
            a = await simulate(profile="snibe-maglumi", to=f"tcp://127.0.0.1:{law.port}", count=2, query=True,
                               samples=[Sample("L1", ("TSH",)), Sample("NONE1", ("TSH",))], ack_timeout=5)
        async with running_link(ctx, mindray) as link:
            b = await simulate(profile="mindray-bs", to=f"tcp://127.0.0.1:{mindray.port}", count=1, query=True,
                               samples=[Sample("M1", ("GLU",))], ack_timeout=5)
            await settle(link)
        return a, b

    law_report, mindray_report = asyncio.run(main())
    answers = {e["specimen"]: e["tests"] for e in law_report if e["event"] == "answer"}
    assert answers["NONE1"] == [] and set(answers["L1"]) == {"TSH", "FT4"}
    answers = {e["specimen"]: e["tests"] for e in mindray_report if e["event"] == "answer"}
    assert set(answers["M1"]) == {"GLU", "UREA"}
    sent = [j.data for j in journal(ctx, direction="out")]
    assert any(b"RSP^K11" in d and b"QAK|" in d for d in sent)
    assert any(b"OML^O33" in d for d in sent) and any(b"DSR^Q03" in d for d in sent)
    assert any(b"QCK^Q02" in d for d in sent)


def test_lis_connects_out_to_a_python_hl7_mllp_server(ctx: LisContext) -> None:
    make_orders(ctx, {"C1": ["GLU"]})
    port = instrument(ctx, "bs-1").port
    assert port is not None
    cfg = instrument(ctx, "bs-1", transport="tcp-client", port=port)
    acks: list[str] = []

    async def analyser(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        for k in range(3):
            writer.writemessage(hl7.parse(oru(f"O{k}", "C1", [("GLU", f"5.{k}")]).decode()))
            await writer.drain()
            reply = await reader.readmessage()
            acks.append(f"{reply.segment('MSA')[1]}:{reply.segment('MSA')[2]}")
        writer.close()

    async def main() -> None:
        server = await hl7.mllp.start_hl7_server(analyser, "127.0.0.1", port, encoding="utf-8")
        async with running_link(ctx, cfg) as link:
            for _ in range(100):
                if len(acks) == 3:
                    break
                await asyncio.sleep(0.05)
            await settle(link)
        server.close()

    asyncio.run(main())
    assert acks == ["AA:O0", "AA:O1", "AA:O2"]
    assert len([r for r in results(ctx) if r.accession == "C1"]) == 3
    assert ctx.status.snapshot()["bs-1"]["messages"] == 3


def test_simulator_garbage_and_oversize_faults_are_survived(ctx: LisContext) -> None:
    if ctx.db.dialect != "sqlite":
        pytest.skip("protocol robustness; one database backend is enough")
    cfg = instrument(ctx, "bs-1", max_message_bytes=50_000)

    async def main() -> list[dict[str, object]]:
        async with running_link(ctx, cfg) as link:
            report = await simulate(profile="generic-hl7", to=f"tcp://127.0.0.1:{cfg.port}", count=2,
                                    ack_timeout=2, faults={"garbage", "oversize"}, tests_per_message=3)
            await settle(link)
            return report

    report = asyncio.run(main())
    assert len([e for e in report if e["event"] == "acked"]) == 2
    assert len(results(ctx)) == 6
    assert any("larger than" in e.error for e in journal(ctx, RawMessageStatus.ERROR))
