"""Property tests: the MLLP decoder and the parsers never crash or hang, whatever the bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.hl7.acks import ack_for
from drivers.hl7.message import Delimiters, ParseError, escape, parse_message, unescape
from drivers.hl7.mllp import BlockReceived, BlockTooLarge, MllpDecoder, encode_block
from drivers.hl7.report import parse_hl7
from drivers.profile import get_profile
from lis.instrument_report import InstrumentReport, MessageParseError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
payload = st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))
stray = st.binary(max_size=20).map(lambda b: b.replace(b"\x0b", b""))


@FAST
@given(st.lists(st.tuples(stray, payload), max_size=6), st.lists(st.integers(1, 64), max_size=60))
def test_mllp_any_chunking_delivers_every_block(blocks: list[tuple[bytes, bytes]], sizes: list[int]) -> None:
    wire = b"".join(junk + encode_block(data) for junk, data in blocks)
    decoder = MllpDecoder()
    events = []
    pos = 0
    for size in sizes:
        events += decoder.receive(wire[pos : pos + size], 0.0)
        pos += size
    events += decoder.receive(wire[pos:], 0.0)
    assert [e.data for e in events if isinstance(e, BlockReceived)] == [data for _, data in blocks]


@FAST
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(1, 120))
def test_mllp_arbitrary_bytes_never_crash_and_stay_bounded(chunks: list[bytes], limit: int) -> None:
    decoder = MllpDecoder(max_block_size=limit, idle_timeout=1.0)
    for k, chunk in enumerate(chunks):
        for event in decoder.receive(chunk, float(k)):
            if isinstance(event, BlockReceived):
                assert len(event.data) <= limit
            else:
                assert not isinstance(event, BlockTooLarge) or event.limit == limit
        assert len(decoder._buf) <= limit
    decoder.check_timeout(float(len(chunks) + 10))
    assert not decoder.in_block


hl7ish = st.lists(
    st.sampled_from(
        [
            "MSH",
            "PID",
            "OBR",
            "OBX",
            "SPM",
            "NTE",
            "QRD",
            "QPD",
            "INV",
            "|",
            "^",
            "~",
            "\\",
            "&",
            "\r",
            "\n",
            "ORU^R01",
            "OUL^R22",
            "QBP^Q11",
            "QRY^Q02",
            "ED",
            "NM",
            "CWE",
            "SN",
            "\\F\\",
            "\\X41\\",
            "2.5.1",
            "UNICODE UTF-8",
            "8859/1",
            "20240101",
            "Nông",
            "\x00",
            "Base64",
            "\\.br\\",
        ]
    ),
    max_size=60,
).map(lambda parts: ("MSH|^~\\&|" + "".join(parts)).encode("utf-8"))


@FAST
@given(st.one_of(st.binary(max_size=400), hl7ish))
def test_parse_message_raises_only_parse_error(raw: bytes) -> None:
    try:
        msg = parse_message(raw)
    except ParseError:
        return
    for seg in msg:
        for n in range(0, len(seg) + 2):
            seg.value(n, 2, 2, 2)
            seg.components(n)
            seg.text(n)


@FAST
@given(
    st.one_of(st.binary(max_size=400), hl7ish),
    st.sampled_from(["generic-hl7", "mindray-bc", "mindray-bs", "snibe-maglumi", "ihe-law"]),
)
def test_parse_hl7_raises_only_message_parse_error(raw: bytes, profile: str) -> None:
    try:
        report = parse_hl7(raw, get_profile(profile))
    except MessageParseError:
        return
    assert isinstance(report, InstrumentReport)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=200), hl7ish), st.sampled_from(["AA", "AE", "AR"]))
def test_ack_for_always_answers(raw: bytes, code: str) -> None:
    ack = ack_for(raw, code, "t", now=datetime(2024, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    msg = parse_message(ack)
    assert msg.get("MSA.1") in ("AA", "AE", "AR")


@FAST
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=80))
def test_escape_round_trip(text: str) -> None:
    assert unescape(escape(text), Delimiters()) == text
