"""LIS1-A receiver role of AstmLink, driven byte by byte and in chunks (hand-written fixtures)."""

from __future__ import annotations

import random

import pytest

from drivers.astm.framing import build_frame, checksum, frame_message
from drivers.astm.link import (
    AstmLink,
    Event,
    FrameRejected,
    LinkState,
    MessageReceived,
    TransferAborted,
    TransferEnded,
    Transmit,
)

ENQ, ACK, NAK, EOT = b"\x05", b"\x06", b"\x15", b"\x04"
MESSAGE = (
    b"H|\\^&|||XN-550^00-22^12345|||||||P|E1394-97|20261126083000\r"
    b"P|1||PID1||Nguyen^Van A||19800101|M\r"
    b"O|1|S0001||^^^^WBC\\^^^^HGB|R||||||N||||||||||||||F\r"
    b"R|1|^^^^WBC^1|8.13|10*3/uL||N||F||||20261126083000\r"
    b"R|2|^^^^HGB^1|13.5|g/dL||N||F||||20261126083000\r"
    b"L|1|N\r"
)


def sent(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Transmit))


def of(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def transfer(message: bytes = MESSAGE, size: int = 240) -> list[bytes]:
    return [ENQ, *frame_message(message, text_size=size), EOT]


def feed_all(link: AstmLink, chunks: list[bytes], now: float = 0.0) -> list[Event]:
    """Feed chunks; acknowledge every held message at once (as a journal that always commits)."""
    events: list[Event] = []
    for chunk in chunks:
        out = link.receive(chunk, now)
        events += out
        while any(isinstance(e, MessageReceived) and not e.acknowledged for e in out):
            out = link.acknowledge(now)
            events += out
    return events


def test_enq_is_acked_and_a_whole_transfer_is_delivered_once() -> None:
    link = AstmLink()
    events = feed_all(link, transfer())
    messages = of(events, MessageReceived)
    assert len(messages) == 1
    assert messages[0].records_text == MESSAGE
    assert of(events, TransferEnded)
    assert sent(events) == ACK * (1 + len(frame_message(MESSAGE)))
    assert link.state is LinkState.NEUTRAL


@pytest.mark.parametrize("size", [1, 7, 64, 240])
def test_byte_by_byte_with_small_frames(size: int) -> None:
    link = AstmLink()
    wire = b"".join(transfer(size=size))
    events = feed_all(link, [wire[i : i + 1] for i in range(len(wire))])
    assert [m.records_text for m in of(events, MessageReceived)] == [MESSAGE]
    assert not of(events, FrameRejected)


def test_random_chunks_deliver_the_same_message() -> None:
    rng = random.Random(1394)
    wire = b"".join(transfer(size=17))
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(wire)), rng.randint(1, 40)))
        chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
        link = AstmLink()
        events = feed_all(link, chunks)
        assert [m.records_text for m in of(events, MessageReceived)] == [MESSAGE]


def test_last_frame_ack_is_withheld_until_acknowledge() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=240)
    assert sent(link.receive(ENQ, 0)) == ACK
    for frame in frames[:-1]:
        assert sent(link.receive(frame, 1)) == ACK
    events = link.receive(frames[-1], 2)
    (message,) = of(events, MessageReceived)
    assert sent(events) == b"", "the frame completing the L record must not be ACKed before journaling"
    assert link.state is LinkState.HOLDING
    assert message.raw == ENQ + b"".join(frames), "raw is the wire bytes ENQ..last frame"
    # bytes arriving while holding are buffered, not answered
    assert link.receive(frames[-1], 3) == []
    # the receiver timer does not run while the LIS is journaling
    assert link.next_deadline() is None
    assert link.poll(100.0) == []
    events = link.acknowledge(101.0)
    # the ACK, then the buffered retransmission answered as a duplicate (ACK, not delivered again)
    assert sent(events) == ACK + ACK
    assert not of(events, MessageReceived)
    assert of(link.receive(EOT, 102.0), TransferEnded)


def test_reject_naks_the_held_frame_and_the_retransmission_completes_again() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE)
    link.receive(ENQ, 0)
    for frame in frames[:-1]:
        link.receive(frame, 0)
    first = of(link.receive(frames[-1], 0), MessageReceived)
    assert sent(link.reject(1)) == NAK
    again = link.receive(frames[-1], 2)
    second = of(again, MessageReceived)
    assert first and second and first[0] == second[0]
    assert sent(link.acknowledge(3)) == ACK


def test_bad_checksum_once_is_naked_then_the_retransmission_succeeds() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=240)
    bad = bytearray(frames[1])
    bad[-4:-2] = b"00" if bytes(bad[-4:-2]) != b"00" else b"01"
    events = feed_all(link, [ENQ, frames[0], bytes(bad)])
    assert sent(events) == ACK + ACK + NAK
    assert of(events, FrameRejected)[0].reason == "bad checksum"
    events = feed_all(link, [*frames[1:], EOT])
    assert [m.records_text for m in of(events, MessageReceived)] == [MESSAGE]


def test_lower_case_checksum_is_accepted() -> None:
    message = b"H|\\^&\rL|1|N\r"
    frame = build_frame(1, message, last=True)
    cs = checksum(frame[1:-4])
    assert cs != cs.lower(), "fixture must contain a hex letter to prove the point"
    lower = frame[:-4] + cs.lower() + b"\r\n"
    events = feed_all(AstmLink(), [ENQ, lower, EOT])
    assert [m.records_text for m in of(events, MessageReceived)] == [message]


def test_duplicate_frame_after_lost_ack_is_acked_and_not_delivered_twice() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=20)
    events = feed_all(link, [ENQ, frames[0], frames[1], frames[1], *frames[2:], EOT])
    assert of(events, MessageReceived)[0].records_text == MESSAGE
    assert not of(events, FrameRejected)
    assert sent(events).count(NAK) == 0


def test_wrong_frame_number_is_naked() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=240)
    events = feed_all(link, [ENQ, frames[0], frames[2]])
    assert sent(events) == ACK + ACK + NAK
    assert "expected 2" in of(events, FrameRejected)[0].reason
    events = feed_all(link, [*frames[1:], EOT])
    assert of(events, MessageReceived)[0].records_text == MESSAGE


def test_frame_numbers_wrap_modulo_8_across_records() -> None:
    many = b"H|\\^&\r" + b"".join(b"R|%d|^^^X|%d\r" % (i, i) for i in range(1, 20)) + b"L|1|N\r"
    frames = frame_message(many, text_size=240)
    assert [f[1] - 0x30 for f in frames[:10]] == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2]
    events = feed_all(AstmLink(), [ENQ, *frames, EOT])
    assert of(events, MessageReceived)[0].records_text == many


def test_receiver_timeout_mid_message_delivers_nothing() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=240)
    events = feed_all(link, [ENQ, frames[0], frames[1]], now=0.0)
    assert link.next_deadline() == pytest.approx(30.0)
    assert link.poll(29.9) == []
    events = link.poll(30.0)
    (aborted,) = of(events, TransferAborted)
    assert "receiver timeout" in aborted.reason and "discarded" in aborted.reason
    assert link.state is LinkState.NEUTRAL
    # the rest of the old message arriving later is ignored (neutral ignores all but ENQ)
    late = feed_all(link, [*frames[2:], EOT], now=31.0)
    assert not of(late, MessageReceived)
    assert sent(late) == b""


def test_eot_mid_message_aborts_without_delivery() -> None:
    frames = frame_message(MESSAGE, text_size=240)
    events = feed_all(AstmLink(), [ENQ, *frames[:3], EOT])
    assert not of(events, MessageReceived)
    (aborted,) = of(events, TransferAborted)
    assert "EOT before the terminator" in aborted.reason
    assert aborted.raw.startswith(ENQ + frames[0])


def test_messages_without_terminator_can_be_delivered_at_eot_when_configured() -> None:
    body = b"H|\\^&\rR|1|^^^X|1\r"
    events = feed_all(AstmLink(require_terminator=False), [ENQ, *frame_message(body), EOT])
    (message,) = of(events, MessageReceived)
    assert message.records_text == body and message.acknowledged


def test_enq_during_transfer_restarts_and_discards_the_incomplete_message() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=240)
    events = feed_all(link, [ENQ, frames[0], frames[1], ENQ])
    assert sent(events) == ACK * 4
    assert of(events, TransferAborted)
    events = feed_all(link, [*frames, EOT])
    assert [m.records_text for m in of(events, MessageReceived)] == [MESSAGE]


def test_oversize_frame_is_refused() -> None:
    link = AstmLink(max_frame_size=64)
    big = build_frame(1, b"R|1|" + b"9" * 200 + b"\r", last=True)
    events = feed_all(link, [ENQ, big])
    assert sent(events) == ACK + NAK
    assert "longer than 64" in of(events, FrameRejected)[0].reason
    # the link still works afterwards
    small = frame_message(b"H|\\^&\rL|1|N\r", text_size=40)
    events = feed_all(link, [*small, EOT])
    assert of(events, MessageReceived)


def test_oversize_frame_without_terminator_yet_is_refused_when_it_ends() -> None:
    link = AstmLink(max_frame_size=64)
    big = build_frame(1, b"x" * 500, last=True)
    events = feed_all(link, [ENQ, big[:100], big[100:300], big[300:]])
    assert sent(events) == ACK + NAK


def test_garbage_is_ignored_in_neutral_and_between_frames() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=240)
    noisy = [b"\x00\xffhello\x06\x15", ENQ, b"\r\n junk", frames[0], b"\x03\x17zz", *frames[1:], EOT]
    events = feed_all(link, noisy)
    assert [m.records_text for m in of(events, MessageReceived)] == [MESSAGE]
    assert sent(events).count(NAK) == 0


def test_busy_receiver_naks_enq() -> None:
    link = AstmLink()
    link.busy = True
    assert sent(link.receive(ENQ, 0)) == NAK
    assert link.state is LinkState.NEUTRAL
    link.busy = False
    assert sent(link.receive(ENQ, 1)) == ACK


def test_back_to_back_transfers_with_eot_and_enq_in_one_chunk() -> None:
    link = AstmLink()
    other = MESSAGE.replace(b"S0001", b"S0002")
    first = frame_message(MESSAGE)
    second = frame_message(other)
    wire = ENQ + b"".join(first) + EOT + ENQ + b"".join(second) + EOT
    events = feed_all(link, [wire])
    # the second transfer was buffered while the first message waited for journaling
    assert [m.records_text for m in of(events, MessageReceived)] == [MESSAGE, other]
    assert len(of(events, TransferEnded)) == 2
    assert sent(events) == ACK * (2 + len(first) + len(second))


def test_two_messages_in_one_transfer_each_held_for_journaling() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE + MESSAGE.replace(b"S0001", b"S0003"))
    events = feed_all(link, [ENQ, *frames, EOT])
    messages = of(events, MessageReceived)
    assert len(messages) == 2
    assert messages[0].raw.startswith(ENQ)
    assert not messages[1].raw.startswith(ENQ)
    assert b"S0003" in messages[1].records_text


def test_cr_only_frames_are_accepted_after_the_lf_grace() -> None:
    link = AstmLink(lf_grace=0.2)
    frames = [f[:-1] for f in frame_message(b"H|\\^&\rL|1|N\r", text_size=4)]
    link.receive(ENQ, 0)
    assert link.receive(frames[0], 0) == []
    assert link.next_deadline() == pytest.approx(0.2)
    assert sent(link.poll(0.25)) == ACK
    # a CR-only frame followed at once by the next frame needs no grace
    assert sent(link.receive(frames[1] + frames[2], 0.3)) == ACK
    events = link.receive(frames[3], 0.4) + link.poll(0.7)
    assert of(events, MessageReceived)


def test_interrupted_frame_is_dropped_and_next_frame_accepted() -> None:
    link = AstmLink()
    frames = frame_message(MESSAGE, text_size=240)
    events = feed_all(link, [ENQ, frames[0][:10], *frames, EOT])
    assert of(events, FrameRejected)
    assert [m.records_text for m in of(events, MessageReceived)] == [MESSAGE]


def test_long_record_whose_tail_looks_like_a_terminator_does_not_end_the_message() -> None:
    long_record = b"R|1|^^^X|" + b"9" * 400 + b"\\L|1|N\r"  # ends like an L record, but is an R record
    body = b"H|\\^&\r" + long_record
    link = AstmLink()
    frames = frame_message(body, text_size=240)
    events = feed_all(link, [ENQ, *frames])
    assert not of(events, MessageReceived)
    events = feed_all(link, [*frame_message(b"L|1|N\r", first_fn=(len(frames) + 1) % 8), EOT])
    assert [m.records_text for m in of(events, MessageReceived)] == [body + b"L|1|N\r"]
