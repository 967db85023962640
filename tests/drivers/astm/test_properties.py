"""Property and fuzz tests (hypothesis): round trips through codec, framing and link; no crash on junk."""

from __future__ import annotations

import contextlib
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.astm.delimiters import Delimiters, RecordError
from drivers.astm.framing import deframe, frame_message
from drivers.astm.link import AstmLink, MessageReceived, Transmit
from drivers.astm.records import (
    CommentRecord,
    HeaderRecord,
    OrderRecord,
    PatientRecord,
    Record,
    ResultRecord,
    TerminatorRecord,
    decode_message,
    encode_message,
)
from drivers.astm.report import parse_astm
from drivers.profile import get_profile
from lis.instrument_report import MessageParseError

DELIMITER_SETS = [Delimiters(), Delimiters(repeat="@", component="^", escape="\\"), Delimiters(repeat="`")]
# printable text including delimiters, escape characters and non-ASCII letters (Vietnamese, latin-1)
TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x1EF9, exclude_categories=("Cs",)), max_size=12)
COMPONENTS = st.lists(TEXT, min_size=1, max_size=3)
FIELD = st.one_of(TEXT, COMPONENTS, st.lists(COMPONENTS, min_size=1, max_size=3))


def _record(cls: type[Record], d: Delimiters) -> st.SearchStrategy[Record]:
    names = [n for n in cls.FIELD_NAMES if n != "delimiter_definition"]
    return st.dictionaries(st.sampled_from(names), FIELD, max_size=5).map(lambda kw: cls.build(d, **kw))


@st.composite
def messages(draw: st.DrawFn) -> tuple[list[Record], Delimiters]:
    d = draw(st.sampled_from(DELIMITER_SETS))
    body = draw(st.lists(st.one_of(*(_record(c, d) for c in (PatientRecord, OrderRecord, ResultRecord,
                                                                 CommentRecord))), max_size=8))
    return [HeaderRecord.build(d), *body, TerminatorRecord.build(d, sequence="1")], d


def _structure(records: list[Record]) -> list[tuple[str, list[list[list[str]]]]]:
    return [(r.record_type, [r.delimiters.split_field(v, "utf-8") for v in r.values()[1:]]) for r in records]


@settings(max_examples=300, deadline=None)
@given(messages())
def test_codec_round_trip_any_records_any_delimiters(msg: tuple[list[Record], Delimiters]) -> None:
    records, d = msg
    raw = encode_message(records, encoding="utf-8")
    back = decode_message(raw, "utf-8")
    assert back[0].delimiters == d
    assert _structure(back) == _structure(records)
    assert encode_message(back, encoding="utf-8") == raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.integers(min_value=1, max_value=300), st.data())
def test_any_frame_size_and_chunking_delivers_the_same_records(
    msg: tuple[list[Record], Delimiters], frame_size: int, data: st.DataObject
) -> None:
    records, _ = msg
    raw = encode_message(records, encoding="utf-8")
    sender = AstmLink(frame_size=frame_size, yield_on_contention=False)
    receiver = AstmLink()
    out = sender.send_message(raw, 0.0, "m")
    delivered: list[bytes] = []
    for _ in range(10_000):
        if not out:
            break
        wire = b"".join(e.data for e in out if isinstance(e, Transmit))
        out = []
        pos = 0
        while pos < len(wire):  # the receiver gets the sender's bytes in random chunks
            n = data.draw(st.integers(min_value=1, max_value=64))
            for event in receiver.receive(wire[pos : pos + n], 0.0):
                if isinstance(event, MessageReceived):
                    delivered.append(event.records_text)
                    assert deframe(event.raw) == event.records_text
                    out += sender.receive(b"".join(e.data for e in receiver.acknowledge(0.0)
                                                   if isinstance(e, Transmit)), 0.0)
                elif isinstance(event, Transmit):
                    out += sender.receive(event.data, 0.0)
            pos += n
    assert delivered == [raw]
    assert _structure(decode_message(delivered[0], "utf-8")) == _structure(records)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12), st.floats(min_value=0, max_value=100))
def test_link_never_crashes_or_hangs_on_random_bytes(chunks: list[bytes], step: float) -> None:
    link = AstmLink(max_frame_size=128)
    now = 0.0
    started = time.perf_counter()
    for chunk in chunks:
        for event in link.receive(chunk, now):
            if isinstance(event, MessageReceived):
                assert event.records_text
                link.acknowledge(now)
        now += step
        link.poll(now)
        deadline = link.next_deadline()
        assert deadline is None or deadline >= now or link.state.value == "neutral"
    assert time.perf_counter() - started < 1.0


ALPHABET = st.sampled_from(list(b"\x02\x03\x04\x05\x06\x15\x17\r\n|\\^&HPORCLQM1234567890ABF"))


@settings(max_examples=2000, deadline=None)
@given(st.lists(ALPHABET, max_size=200).map(bytes))
def test_link_fuzz_with_protocol_heavy_alphabet(data: bytes) -> None:
    link = AstmLink(max_frame_size=64)
    for i in range(0, len(data), 7):
        for event in link.receive(data[i : i + 7], float(i)):
            if isinstance(event, MessageReceived):
                link.acknowledge(float(i))
    link.poll(1e6)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.lists(ALPHABET, max_size=200).map(bytes)))
def test_codec_and_parser_raise_only_their_own_errors_on_junk(data: bytes) -> None:
    profile = get_profile("generic-astm")
    with contextlib.suppress(RecordError):
        decode_message(data, "latin-1")
    with contextlib.suppress(MessageParseError):
        parse_astm(data, profile)
    deframe(data)
    frame_message(data, text_size=5)
