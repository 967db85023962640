"""MLLP framing (HL7 v2.5.1 Appendix C.4): byte by byte, random chunks, stray bytes, limits, timeouts."""

from __future__ import annotations

import random

import pytest

from drivers.hl7.mllp import (
    BlockAborted,
    BlockReceived,
    BlockTooLarge,
    MllpDecoder,
    MllpEvent,
    StrayBytes,
    encode_block,
)

MSG_A = b"MSH|^~\\&|A|B|||20240101||ORU^R01|1|P|2.5.1\rPID|1||X\r"
MSG_B = b"MSH|^~\\&|A|B|||20240101||ORU^R01|2|P|2.5.1\rOBX|1|NM|WBC||7.5\r"


def received(events: list[MllpEvent]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, BlockReceived)]


def feed_all(decoder: MllpDecoder, data: bytes, sizes: list[int], now: float = 0.0) -> list[MllpEvent]:
    events: list[MllpEvent] = []
    pos = 0
    for size in sizes:
        events += decoder.receive(data[pos : pos + size], now)
        pos += size
    events += decoder.receive(data[pos:], now)
    return events


def test_encode_block_wraps_vt_fs_cr() -> None:
    assert encode_block(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"


def test_encode_block_refuses_framing_bytes_inside() -> None:
    with pytest.raises(ValueError):
        encode_block(b"MSH\x1c")


def test_one_block_in_one_chunk() -> None:
    events = MllpDecoder().receive(encode_block(MSG_A), 0.0)
    assert events == [BlockReceived(MSG_A)]


def test_byte_by_byte() -> None:
    decoder = MllpDecoder()
    wire = encode_block(MSG_A) + encode_block(MSG_B)
    events: list[MllpEvent] = []
    for i in range(len(wire)):
        events += decoder.receive(wire[i : i + 1], float(i))
    assert received(events) == [MSG_A, MSG_B]
    assert not decoder.in_block


@pytest.mark.parametrize("seed", range(20))
def test_random_chunks_give_the_same_blocks(seed: int) -> None:
    rng = random.Random(seed)
    messages = [MSG_A, MSG_B, b"MSH|^~\\&|" + bytes(rng.randrange(0x20, 0x7F) for _ in range(300))]
    wire = b"".join(encode_block(m) for m in messages)
    sizes = [rng.randint(1, 40) for _ in range(len(wire) // 10)]
    assert received(feed_all(MllpDecoder(), wire, sizes)) == messages


def test_several_messages_in_one_chunk() -> None:
    events = MllpDecoder().receive(encode_block(MSG_A) + encode_block(MSG_B) + encode_block(MSG_A), 0.0)
    assert received(events) == [MSG_A, MSG_B, MSG_A]


def test_stray_bytes_before_vt_are_skipped_and_reported() -> None:
    events = MllpDecoder().receive(b"\r\nnoise" + encode_block(MSG_A), 0.0)
    assert events == [StrayBytes(7), BlockReceived(MSG_A)]


def test_stray_bytes_between_blocks() -> None:
    decoder = MllpDecoder()
    events = decoder.receive(encode_block(MSG_A) + b"\n", 0.0) + decoder.receive(encode_block(MSG_B), 1.0)
    assert received(events) == [MSG_A, MSG_B]
    assert StrayBytes(1) in events


def test_fs_without_cr_then_next_block() -> None:
    events = MllpDecoder().receive(b"\x0b" + MSG_A + b"\x1c" + encode_block(MSG_B), 0.0)
    assert events == [BlockReceived(MSG_A, missing_cr=True), BlockReceived(MSG_B)]


def test_fs_without_cr_completed_by_timeout() -> None:
    decoder = MllpDecoder(idle_timeout=5.0)
    assert decoder.receive(b"\x0b" + MSG_A + b"\x1c", 10.0) == []
    assert decoder.check_timeout(14.9) == []
    assert decoder.check_timeout(15.0) == [BlockReceived(MSG_A, missing_cr=True)]


def test_fs_without_cr_accepted_at_once_when_configured() -> None:
    decoder = MllpDecoder(accept_fs_without_cr=True)
    assert decoder.receive(b"\x0b" + MSG_A + b"\x1c", 0.0) == [BlockReceived(MSG_A, missing_cr=True)]


def test_fs_followed_by_data_is_data() -> None:
    events = MllpDecoder().receive(b"\x0bAB\x1cCD\x1c\r", 0.0)
    assert events == [BlockReceived(b"AB\x1cCD")]


def test_new_vt_inside_block_aborts_the_partial_block() -> None:
    events = MllpDecoder().receive(b"\x0bpartial" + encode_block(MSG_A), 0.0)
    assert events == [BlockAborted(7, "a new block started before this one ended"), BlockReceived(MSG_A)]


def test_oversize_block_is_refused_then_decoder_resynchronises() -> None:
    decoder = MllpDecoder(max_block_size=100)
    big = b"MSH|" + b"x" * 200
    events = decoder.receive(encode_block(big) + encode_block(MSG_A[:90]), 0.0)
    assert events == [BlockTooLarge(100), BlockReceived(MSG_A[:90])]


def test_oversize_detected_across_chunks_without_buffering_everything() -> None:
    decoder = MllpDecoder(max_block_size=100)
    events = decoder.receive(b"\x0b" + b"x" * 60, 0.0) + decoder.receive(b"y" * 60, 0.1)
    assert events == [BlockTooLarge(100)]
    assert not decoder.in_block
    events = decoder.receive(b"z" * 1000 + b"\x1c\r" + encode_block(b"MSH|ok"), 0.2)
    assert received(events) == [b"MSH|ok"]


def test_exactly_at_limit_is_accepted() -> None:
    decoder = MllpDecoder(max_block_size=len(MSG_A))
    assert received(decoder.receive(encode_block(MSG_A), 0.0)) == [MSG_A]


def test_one_byte_over_the_limit_is_refused() -> None:
    decoder = MllpDecoder(max_block_size=len(MSG_A) - 1)
    assert decoder.receive(encode_block(MSG_A), 0.0) == [BlockTooLarge(len(MSG_A) - 1)]


def test_default_limit_is_16_mib() -> None:
    assert MllpDecoder().max_block_size == 16 * 1024 * 1024


def test_idle_timeout_aborts_a_started_block() -> None:
    decoder = MllpDecoder(idle_timeout=30.0)
    decoder.receive(b"\x0bMSH|half", 100.0)
    assert decoder.deadline() == 130.0
    assert decoder.check_timeout(129.0) == []
    decoder.receive(b" more", 120.0)  # activity pushes the deadline
    assert decoder.check_timeout(149.0) == []
    assert decoder.check_timeout(150.0) == [BlockAborted(13, "no end of block within 30 s")]
    assert not decoder.in_block
    assert received(decoder.receive(encode_block(MSG_A), 151.0)) == [MSG_A]


def test_no_timeout_when_idle_between_blocks() -> None:
    decoder = MllpDecoder(idle_timeout=1.0)
    decoder.receive(encode_block(MSG_A), 0.0)
    assert decoder.deadline() is None
    assert decoder.check_timeout(1000.0) == []


def test_bad_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        MllpDecoder(max_block_size=0)
