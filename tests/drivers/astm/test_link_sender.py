"""LIS1-A sender role of AstmLink: establishment, retransmission, abort, contention, busy."""

from __future__ import annotations

import pytest

from drivers.astm.framing import frame_message
from drivers.astm.link import (
    AstmLink,
    Event,
    LinkState,
    MessageReceived,
    MessageSent,
    SendDeferred,
    SendFailed,
    Transmit,
)

ENQ, ACK, NAK, EOT = b"\x05", b"\x06", b"\x15", b"\x04"
ORDER = b"H|\\^&|||OPEN-LIS\rP|1\rO|1|S0001||^^^GLU|R\rL|1|N\r"


def sent(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Transmit))


def of(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def test_send_happy_path_enq_frames_eot() -> None:
    link = AstmLink(frame_size=16)
    frames = frame_message(ORDER, text_size=16)
    assert sent(link.send_message(ORDER, 0, "m1")) == ENQ
    out = link.receive(ACK, 1)
    assert sent(out) == frames[0]
    wire = b""
    for i in range(1, len(frames)):
        wire += sent(link.receive(ACK, 1 + i))
    assert wire == b"".join(frames[1:])
    last = link.receive(ACK, 99)
    assert sent(last) == EOT
    assert of(last, MessageSent) == [MessageSent("m1")]
    assert link.state is LinkState.NEUTRAL


def test_nak_causes_retransmission_of_the_same_frame() -> None:
    link = AstmLink()
    frames = frame_message(ORDER)
    link.send_message(ORDER, 0, "m1")
    assert sent(link.receive(ACK, 0)) == frames[0]
    assert sent(link.receive(NAK, 1)) == frames[0]
    assert sent(link.receive(ACK, 2)) == frames[1]


def test_timeout_causes_retransmission_and_six_failures_abort_with_eot() -> None:
    link = AstmLink()
    frames = frame_message(ORDER)
    link.send_message(ORDER, 0, "m1")
    link.receive(ACK, 0)
    now = 0.0
    retransmissions = 0
    for _ in range(5):
        assert link.next_deadline() == pytest.approx(now + 15)
        assert link.poll(now + 14.9) == []
        now += 15
        out = link.poll(now)
        assert sent(out) == frames[0]
        retransmissions += 1
    now += 15
    out = link.poll(now)
    assert sent(out) == EOT, "the 6th failed attempt aborts the transfer"
    (failed,) = of(out, SendFailed)
    assert failed.message_id == "m1" and "6 failed attempts" in failed.reason
    assert retransmissions == 5  # 6 transmissions in all
    assert link.state is LinkState.NEUTRAL
    assert link.queued_messages == 0


def test_six_naks_abort() -> None:
    link = AstmLink()
    link.send_message(ORDER, 0, "m1")
    link.receive(ACK, 0)
    events: list[Event] = []
    for i in range(6):
        events += link.receive(NAK, i)
    assert sent(events).endswith(EOT)
    assert of(events, SendFailed)


def test_no_reply_to_enq_is_retried_then_aborted() -> None:
    link = AstmLink()
    link.send_message(ORDER, 0, "m1")
    wire = b""
    events: list[Event] = []
    for k in range(1, 7):
        out = link.poll(15.0 * k)
        events += out
        wire += sent(out)
    assert wire == ENQ * 5 + EOT
    assert of(events, SendFailed)


def test_busy_nak_to_enq_defers_and_retries_after_delay() -> None:
    link = AstmLink(busy_delay=10)
    link.send_message(ORDER, 0, "m1")
    out = link.receive(NAK, 1)
    (deferred,) = of(out, SendDeferred)
    assert deferred.retry_at == pytest.approx(11) and "busy" in deferred.reason
    assert link.poll(10.9) == []
    assert link.next_deadline() == pytest.approx(11)
    assert sent(link.poll(11)) == ENQ


def test_contention_lis_yields_receives_and_retries_after_20_s() -> None:
    link = AstmLink()
    link.send_message(ORDER, 0, "m1")
    out = link.receive(ENQ, 1)  # the instrument bid at the same time
    assert sent(out) == ACK, "the instrument has priority: the LIS acknowledges its ENQ"
    (deferred,) = of(out, SendDeferred)
    assert deferred.retry_at >= 21
    assert link.state is LinkState.RECEIVING
    incoming = b"H|\\^&\rL|1|N\r"
    events: list[Event] = []
    for frame in frame_message(incoming):
        events += link.receive(frame, 2)
    assert of(events, MessageReceived)
    link.acknowledge(2)
    assert sent(link.receive(EOT, 3)) == b"", "no new bid before the contention delay"
    assert link.poll(20.9) == []
    assert sent(link.poll(21)) == ENQ


def test_instrument_side_keeps_the_line_on_contention() -> None:
    link = AstmLink(yield_on_contention=False)
    link.send_message(ORDER, 0, "m1")
    assert sent(link.receive(ENQ, 1)) == b""
    assert sent(link.receive(ACK, 2)) == frame_message(ORDER)[0]


def test_message_queued_during_a_receive_is_sent_after_eot() -> None:
    link = AstmLink()
    link.receive(ENQ, 0)
    assert link.send_message(ORDER, 1, "answer") == []
    for frame in frame_message(b"H|\\^&\rQ|1|^S1||ALL\rL|1|N\r"):
        out = link.receive(frame, 1)
    assert of(out, MessageReceived)
    link.acknowledge(1)
    assert sent(link.receive(EOT, 2)) == ENQ


def test_two_links_talk_to_each_other() -> None:
    lis, analyser = AstmLink(frame_size=10), AstmLink(yield_on_contention=False)
    pending = analyser.send_message(ORDER, 0, "up")
    delivered: list[bytes] = []
    finished: list[str] = []
    for _ in range(200):
        if not pending:
            break
        nxt: list[Event] = []
        for e in pending:
            if isinstance(e, Transmit):
                for r in lis.receive(e.data, 0):
                    if isinstance(r, MessageReceived):
                        delivered.append(r.records_text)
                        nxt += analyser.receive(sent(lis.acknowledge(0)), 0)
                    elif isinstance(r, Transmit):
                        nxt += analyser.receive(r.data, 0)
            elif isinstance(e, MessageSent):
                finished.append(e.message_id)
        pending = nxt
    assert delivered == [ORDER]
    assert finished == ["up"]


def test_empty_message_is_refused() -> None:
    with pytest.raises(ValueError):
        AstmLink().send_message(b"", 0)


def test_reset_keeps_the_outgoing_message_and_restarts_it() -> None:
    link = AstmLink()
    link.send_message(ORDER, 0, "m1")
    link.receive(ACK, 0)
    assert link.reset(1) == []
    assert link.state is LinkState.NEUTRAL and link.queued_messages == 1
    assert sent(link.poll(1)) == ENQ
    assert sent(link.receive(ACK, 2)) == frame_message(ORDER)[0]


def test_reset_mid_receive_reports_the_incomplete_message() -> None:
    from drivers.astm.link import TransferAborted

    link = AstmLink()
    link.receive(ENQ, 0)
    link.receive(frame_message(ORDER)[0], 0)
    (aborted,) = of(link.reset(1, "socket closed"), TransferAborted)
    assert aborted.reason.startswith("socket closed") and aborted.raw.startswith(ENQ)
    assert sent(link.receive(ENQ, 2)) == ACK
