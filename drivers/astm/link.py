"""CLSI LIS1-A (ASTM E1381) link layer as one sans-IO state machine.

:class:`AstmLink` is fed the bytes read from the wire with :meth:`~AstmLink.receive` and the clock
with :meth:`~AstmLink.poll`; it returns small frozen events, among them :class:`Transmit` carrying
the bytes to write. It owns no socket, thread or timer: the transport (TCP server or client, serial
port) calls ``poll(now)`` at :meth:`~AstmLink.next_deadline` and writes every ``Transmit.data``.

Both roles live in the same object, because LIS1-A has one line that either side may claim:

* **Receiver** (LIS1-A receiver): ENQ is answered with ACK (NAK while :attr:`AstmLink.busy`); each frame is
  checked (checksum, frame number) and ACKed or NAKed; ETB pieces are reassembled; EOT returns the line
  to neutral; after 30 s without a byte the transfer is abandoned and its incomplete message dropped.
* **Sender** (LIS1-A sender): :meth:`~AstmLink.send_message` queues a message; the link bids for the line
  with ENQ, sends the frames one by one waiting for ACK, retransmits on NAK or after 15 s without a
  reply, aborts with EOT after 6 failed attempts, and ends with EOT.

Durability rule (journal before acknowledge, ARCHITECTURE.md principle 2)
-------------------------------------------------------------------------
An analyser forgets a message once the last frame is acknowledged. In LIS1-A the receiver only learns
that the *transfer* is over at EOT, which arrives after every frame has been ACKed, so waiting for EOT
cannot protect anything. The *message* however ends with its terminator record: LIS2-A2 requires an L
record as the last record of every message. Therefore:

    A verified ETX frame that completes an L record completes a message. The link emits
    :class:`MessageReceived` with the transfer's raw bytes and the message text, and withholds that
    frame's ACK. The caller commits the raw bytes to its journal and then calls
    :meth:`AstmLink.acknowledge`, which returns the ACK. If the commit fails, :meth:`AstmLink.reject`
    NAKs the frame so the analyser retransmits it (and the message is emitted again).

While the ACK is withheld, received bytes are buffered (a retransmission of the held frame is then
answered as a duplicate after the ACK) and the receiver timer is stopped: the wait is the LIS's own.
A transfer that ends (EOT, timeout, new ENQ) without a terminator record is reported as
:class:`TransferAborted` with its raw bytes, never as a complete message, unless the link was created
with ``require_terminator=False`` for an analyser that omits L records; such messages are delivered at
EOT, after their frames were ACKed (the analyser gives no way to do better).

``MessageReceived.raw`` holds the wire bytes of the message as accepted: the ENQ that opened the
transfer (for the first message of a transfer) and each verified frame exactly as received, in order;
NAKed frames and duplicate retransmissions are left out, so re-parsing the journal
(:func:`drivers.astm.framing.deframe`) gives the same records as ``records_text``.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass
from enum import Enum

from drivers.astm.framing import (
    ACK,
    CR,
    ENQ,
    EOT,
    ETB,
    ETX,
    LF,
    NAK,
    STANDARD_TEXT_SIZE,
    STX,
    checksum_matches,
    frame_message,
    next_frame_number,
)

log = logging.getLogger(__name__)

_ACK = bytes((ACK,))
_NAK = bytes((NAK,))
_ENQ = bytes((ENQ,))
_EOT = bytes((EOT,))
_FRAME_SPECIALS = re.compile(rb"[\x02\x03\x04\x05\x17]")


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Transmit:
    """Bytes the transport must write to the line now."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete message (H..L) was received and verified; journal ``raw``, then call acknowledge()."""

    raw: bytes
    records_text: bytes
    acknowledged: bool = False  # True only for require_terminator=False deliveries at EOT


@dataclass(frozen=True, slots=True)
class TransferEnded:
    """LIS1-A termination phase: EOT received; the line is neutral again."""


@dataclass(frozen=True, slots=True)
class TransferAborted:
    """A transfer ended without completing its message; the partial message was discarded."""

    reason: str
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame was refused with NAK (bad checksum, wrong frame number, malformed, oversize)."""

    reason: str


@dataclass(frozen=True, slots=True)
class MessageSent:
    """Every frame of a queued message was ACKed and EOT was sent."""

    message_id: str


@dataclass(frozen=True, slots=True)
class SendDeferred:
    """The line could not be established (busy NAK or contention); the link retries at ``retry_at``."""

    message_id: str
    retry_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class SendFailed:
    """LIS1-A error recovery: the sender gave up after the maximum number of attempts and sent EOT."""

    message_id: str
    reason: str


Event = (
    Transmit | MessageReceived | TransferEnded | TransferAborted | FrameRejected | MessageSent
    | SendDeferred | SendFailed
)


class LinkState(Enum):
    NEUTRAL = "neutral"
    RECEIVING = "receiving"
    HOLDING = "holding"  # message emitted, ACK of its last frame withheld until acknowledge()
    AWAIT_ENQ_REPLY = "await_enq_reply"
    AWAIT_FRAME_REPLY = "await_frame_reply"


@dataclass(slots=True)
class _Outgoing:
    message_id: str
    frames: list[bytes]


@dataclass(slots=True)
class _Rollback:
    text: bytes
    raw: bytes
    last_fn: int | None
    expected_fn: int


def _ends_with_terminator(text: bytearray) -> bool:
    """True when the last record of ``text`` is an L (terminator) record (only its tail is examined)."""
    tail = bytes(text[-256:]).rstrip(b"\r\n")
    cut = max(tail.rfind(b"\r"), tail.rfind(b"\n"))
    if cut < 0 and len(text) > 256:
        return False  # the last record is longer than any terminator record
    line = tail[cut + 1 :]
    return line[:1] in (b"L", b"l") and (len(line) == 1 or not line[1:2].isalnum())


class AstmLink:
    """One LIS1-A line, receiver and sender. See the module docstring for the rules.

    Parameters (all times in seconds):

    ``frame_size``: text bytes per outgoing frame (LIS1-A maximum frame: 240).
    ``max_frame_size``: longest incoming frame accepted; longer frames are NAKed.
    ``receive_timeout``: LIS1-A receiver time-out (30 s).
    ``reply_timeout``: LIS1-A sender time-out waiting for a reply to ENQ or a frame (15 s).
    ``max_attempts``: LIS1-A error recovery: transmissions of one frame before aborting (6).
    ``contention_delay``: LIS1-A contention: wait before bidding again after losing contention (>= 20 s).
    ``busy_delay``: LIS1-A establishment (busy): wait before a new ENQ after a busy NAK (>= 10 s).
    ``yield_on_contention``: True for the LIS (the instrument has priority); False for a simulator
    playing the instrument.
    ``require_terminator``: deliver only messages closed by an L record (see module docstring).
    ``lf_grace``: how long to wait for the LF after a frame's CR before accepting a CR-only frame.
    """

    def __init__(
        self,
        *,
        frame_size: int = STANDARD_TEXT_SIZE,
        max_frame_size: int = 65536,
        receive_timeout: float = 30.0,
        reply_timeout: float = 15.0,
        max_attempts: int = 6,
        contention_delay: float = 20.0,
        busy_delay: float = 10.0,
        yield_on_contention: bool = True,
        require_terminator: bool = True,
        lf_grace: float = 0.2,
    ) -> None:
        if frame_size < 1 or max_frame_size < 8:
            raise ValueError("frame_size must be >= 1 and max_frame_size >= 8")
        self.frame_size = frame_size
        self.max_frame_size = max_frame_size
        self.receive_timeout = receive_timeout
        self.reply_timeout = reply_timeout
        self.max_attempts = max_attempts
        self.contention_delay = contention_delay
        self.busy_delay = busy_delay
        self.yield_on_contention = yield_on_contention
        self.require_terminator = require_terminator
        self.lf_grace = lf_grace
        self.busy = False  # set by the caller: NAK incoming ENQ (LIS1-A establishment: receiver busy)

        self.state = LinkState.NEUTRAL
        self._buf = bytearray()
        self._pending = bytearray()  # bytes received while HOLDING
        # receiver
        self._text = bytearray()
        self._raw = bytearray()
        self._last_fn: int | None = None
        self._expected_fn = 1
        self._rx_deadline: float | None = None
        self._cr_since: float | None = None
        self._discarding = False
        self._rollback: _Rollback | None = None
        # sender
        self._queue: deque[_Outgoing] = deque()
        self._frame_index = 0
        self._failures = 0
        self._tx_deadline: float | None = None
        self._retry_at = float("-inf")

    # ------------------------------------------------------------------------------------- public API

    def receive(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes read from the line; returns the resulting events (including bytes to write)."""
        if not data:
            return []
        if self.state is LinkState.HOLDING:
            self._pending += data
            return []
        self._buf += data
        if self.state is LinkState.RECEIVING:
            self._rx_deadline = now + self.receive_timeout
        return self._process(now)

    def acknowledge(self, now: float) -> list[Event]:
        """The held message is journaled: ACK its last frame (and process bytes that arrived since)."""
        if self.state is not LinkState.HOLDING:
            return []
        self._rollback = None
        events: list[Event] = [Transmit(_ACK)]
        events += self._resume(now)
        return events

    def reject(self, now: float) -> list[Event]:
        """The held message could not be journaled: NAK its last frame so the analyser sends it again.

        LIS1-A defective frames: a NAKed frame is retransmitted by the sender; the receiver state is rolled back to
        before that frame, so the retransmission completes (and emits) the message again.
        """
        if self.state is not LinkState.HOLDING or self._rollback is None:
            return []
        rb = self._rollback
        self._text = bytearray(rb.text)
        self._raw = bytearray(rb.raw)
        self._last_fn = rb.last_fn
        self._expected_fn = rb.expected_fn
        self._rollback = None
        events: list[Event] = [Transmit(_NAK)]
        events += self._resume(now)
        return events

    def send_message(self, records: bytes, now: float, message_id: str = "") -> list[Event]:
        """Queue a message (LIS2-A2 records separated by CR) for sending in its own transfer.

        LIS1-A establishment phase: the link bids for the line with ENQ when it is neutral; otherwise the message
        waits for the current transfer to end (or for a contention / busy delay to pass).
        """
        frames = frame_message(records, text_size=self.frame_size)
        if not frames:
            raise ValueError("cannot send an empty message")
        self._queue.append(_Outgoing(message_id, frames))
        if self.state is LinkState.NEUTRAL and now >= self._retry_at:
            return self._bid(now)
        return []

    def poll(self, now: float) -> list[Event]:
        """Run the timers: receiver timeout, sender reply timeout, retry after busy or contention."""
        events: list[Event] = []
        if self.state is LinkState.RECEIVING:
            if self._cr_since is not None and now >= self._cr_since + self.lf_grace:
                events += self._process(now, accept_cr_only=True)
            if self.state is LinkState.RECEIVING and self._rx_deadline is not None and now >= self._rx_deadline:
                events += self._receiver_timeout(now)
        elif (self.state in (LinkState.AWAIT_ENQ_REPLY, LinkState.AWAIT_FRAME_REPLY)
              and self._tx_deadline is not None and now >= self._tx_deadline):
            events += self._send_failure(now, "no reply within the sender timeout")
        if self.state is LinkState.NEUTRAL and self._queue and now >= self._retry_at:
            events += self._bid(now)
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do, or None if nothing is timed."""
        candidates: list[float] = []
        if self.state is LinkState.RECEIVING:
            if self._rx_deadline is not None:
                candidates.append(self._rx_deadline)
            if self._cr_since is not None:
                candidates.append(self._cr_since + self.lf_grace)
        elif self.state in (LinkState.AWAIT_ENQ_REPLY, LinkState.AWAIT_FRAME_REPLY):
            if self._tx_deadline is not None:
                candidates.append(self._tx_deadline)
        elif self.state is LinkState.NEUTRAL and self._queue:
            candidates.append(self._retry_at)
        return min(candidates) if candidates else None

    def reset(self, now: float, reason: str = "connection lost") -> list[Event]:
        """The transport lost the line (TCP disconnect, serial port closed): return to neutral.

        An incomplete incoming message is reported as :class:`TransferAborted` (never delivered). A
        message already emitted but not yet acknowledged stays the caller's to journal: the analyser
        never got the ACK and will send it again, which the ingest de-duplicates by content. A message
        being sent stays queued and is sent again from its ENQ on the next :meth:`poll`.
        """
        events: list[Event] = []
        if self.state is LinkState.RECEIVING and self._text:
            events.append(TransferAborted(f"{reason}: incomplete message discarded", bytes(self._raw)))
        self._to_neutral()
        self._buf.clear()
        self._pending.clear()
        self._rollback = None
        self._tx_deadline = None
        self._frame_index = 0
        self._failures = 0
        self._retry_at = now
        return events

    @property
    def queued_messages(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------------------------- dispatch

    def _process(self, now: float, accept_cr_only: bool = False) -> list[Event]:
        events: list[Event] = []
        buf = self._buf
        while buf:
            state = self.state
            if state is LinkState.NEUTRAL:
                if not self._neutral(now, events):
                    break
            elif state is LinkState.RECEIVING:
                if not self._receiving(now, events, accept_cr_only):
                    break
            elif state is LinkState.HOLDING:
                self._pending[:0] = buf
                buf.clear()
                break
            else:
                self._sending(now, events)
        return events

    def _resume(self, now: float) -> list[Event]:
        self.state = LinkState.RECEIVING
        self._rx_deadline = now + self.receive_timeout
        pending = bytes(self._pending)
        self._pending.clear()
        self._buf += pending
        return self._process(now)

    # ------------------------------------------------------------------------------------- neutral

    def _neutral(self, now: float, events: list[Event]) -> bool:
        """LIS1-A neutral state: in the neutral state only ENQ matters; every other byte is ignored."""
        buf = self._buf
        i = buf.find(_ENQ)
        if i < 0:
            buf.clear()
            return False
        del buf[: i + 1]
        self._answer_enq(now, events)
        return True

    def _answer_enq(self, now: float, events: list[Event]) -> None:
        """LIS1-A establishment phase (receiver): ACK an ENQ to accept the line, NAK it when busy."""
        if self.busy:
            events.append(Transmit(_NAK))
            return
        events.append(Transmit(_ACK))
        self.state = LinkState.RECEIVING
        self._text = bytearray()
        self._raw = bytearray(_ENQ)
        self._last_fn = None
        self._expected_fn = 1
        self._discarding = False
        self._cr_since = None
        self._rx_deadline = now + self.receive_timeout

    # ------------------------------------------------------------------------------------- receiver

    def _receiving(self, now: float, events: list[Event], accept_cr_only: bool) -> bool:
        """Consume what the buffer holds in the receive state; False when more bytes are needed."""
        buf = self._buf
        if self._discarding:
            return self._discard_oversize(events)
        if buf[0] != STX:
            # LIS1-A transfer phase: between frames only STX, EOT (and ENQ, see _unexpected_enq) mean something.
            m = _FRAME_SPECIALS.search(buf)
            if m is None:
                buf.clear()
                return False
            del buf[: m.start()]
            b = buf[0]
            if b == EOT:
                del buf[:1]
                self._end_transfer(now, events)
                return True
            if b == ENQ:
                del buf[:1]
                self._unexpected_enq(now, events)
                return True
            if b != STX:  # a stray ETX/ETB outside a frame
                del buf[:1]
                return True
        # buf[0] is STX: look for the frame terminator, noticing control bytes that cut the frame short
        m = _FRAME_SPECIALS.search(buf, 1)
        if m is None:
            if len(buf) > self.max_frame_size:
                self._discarding = True
                buf.clear()
                return False
            return False
        t = m.start()
        b = buf[t]
        if b in (STX, EOT, ENQ):
            # LIS1-A defective frames: a frame interrupted by a control character is discarded; the sender repeats
            del buf[:t]
            events.append(FrameRejected("frame interrupted before its ETX/ETB; discarded"))
            return True
        if t + 4 > self.max_frame_size:
            del buf[: t + 1]
            self._discarding = True
            return True
        if len(buf) < t + 4:
            return False  # checksum and CR still to come
        after = buf[t + 3]
        if after == LF:
            end = t + 4  # tolerated: LF without CR after the checksum (seen from Horiba and Roche)
        elif after != CR:
            events.append(FrameRejected("frame checksum not followed by CR LF"))
            events.append(Transmit(_NAK))
            del buf[: t + 3]
            return True
        elif len(buf) == t + 4 and not accept_cr_only:
            self._cr_since = now  # waiting for LF (or poll() accepting a CR-only frame)
            return False
        else:
            end = t + 5 if len(buf) > t + 4 and buf[t + 4] == LF else t + 4
        frame = bytes(buf[:end])
        del buf[:end]
        self._cr_since = None
        self._on_frame(frame, t, now, events)
        return True

    def _discard_oversize(self, events: list[Event]) -> bool:
        """Refuse a frame longer than ``max_frame_size``: skip to its end (LF) and NAK it."""
        buf = self._buf
        i = buf.find(b"\n")
        j = buf.find(_EOT)
        if j >= 0 and (i < 0 or j < i):
            del buf[:j]
            self._discarding = False
            events.append(FrameRejected(f"frame longer than {self.max_frame_size} bytes refused"))
            return True
        if i < 0:
            buf.clear()
            return False
        del buf[: i + 1]
        self._discarding = False
        events.append(FrameRejected(f"frame longer than {self.max_frame_size} bytes refused"))
        events.append(Transmit(_NAK))
        return True

    def _on_frame(self, frame: bytes, t: int, now: float, events: list[Event]) -> None:
        """LIS1-A acknowledgments and defective frames: check a complete frame, then ACK, NAK or hold it."""
        body = frame[1 : t + 1]
        if not checksum_matches(body, frame[t + 1 : t + 3]):
            events.append(FrameRejected("bad checksum"))
            events.append(Transmit(_NAK))
            return
        fn_byte = frame[1]
        fn = fn_byte - 0x30
        if not 0 <= fn <= 7:
            events.append(FrameRejected(f"frame number {chr(fn_byte)!r} is not 0..7"))
            events.append(Transmit(_NAK))
            return
        if fn != self._expected_fn:
            if fn == self._last_fn:
                # LIS1-A acknowledgments: the previous frame again: our ACK was lost. ACK, do not deliver twice.
                events.append(Transmit(_ACK))
                return
            events.append(FrameRejected(f"frame number {fn}, expected {self._expected_fn}"))
            events.append(Transmit(_NAK))
            return
        text_len, raw_len, last_fn, expected_fn = len(self._text), len(self._raw), self._last_fn, self._expected_fn
        self._text += frame[2:t]
        self._raw += frame
        self._last_fn = fn
        self._expected_fn = next_frame_number(fn)
        if frame[t] == ETX and _ends_with_terminator(self._text):
            events.append(MessageReceived(raw=bytes(self._raw), records_text=bytes(self._text)))
            self._rollback = _Rollback(bytes(self._text[:text_len]), bytes(self._raw[:raw_len]), last_fn,
                                       expected_fn)
            self._text = bytearray()
            self._raw = bytearray()
            self.state = LinkState.HOLDING
            self._rx_deadline = None
            return
        assert frame[t] in (ETX, ETB)
        events.append(Transmit(_ACK))

    def _end_transfer(self, now: float, events: list[Event]) -> None:
        """LIS1-A termination phase: EOT ends the transfer; an unterminated message is not delivered as complete."""
        if self._text:
            if self.require_terminator:
                events.append(TransferAborted(
                    "EOT before the terminator record (L): incomplete message discarded", bytes(self._raw)))
            else:
                events.append(MessageReceived(raw=bytes(self._raw), records_text=bytes(self._text),
                                              acknowledged=True))
        else:
            events.append(TransferEnded())
        self._to_neutral()
        if self._queue and now >= self._retry_at:
            events += self._bid(now)

    def _unexpected_enq(self, now: float, events: list[Event]) -> None:
        """ENQ in the middle of a transfer: the sender has restarted (it missed our replies or gave up).

        The incomplete message is discarded (reported) and the ENQ is answered as a new transfer.
        """
        if self._text:
            events.append(TransferAborted("ENQ during a transfer: incomplete message discarded",
                                          bytes(self._raw)))
        self._to_neutral()
        self._answer_enq(now, events)

    def _receiver_timeout(self, now: float) -> list[Event]:
        """LIS1-A receiver time-out: 30 s without a frame: the transfer is over, its incomplete message dropped."""
        raw = bytes(self._raw)
        reason = f"receiver timeout: nothing received for {self.receive_timeout:g} s"
        if self._text:
            reason += "; incomplete message discarded"
        self._to_neutral()
        self._buf.clear()
        events: list[Event] = [TransferAborted(reason, raw)]
        if self._queue and now >= self._retry_at:
            events += self._bid(now)
        return events

    def _to_neutral(self) -> None:
        self.state = LinkState.NEUTRAL
        self._text = bytearray()
        self._raw = bytearray()
        self._last_fn = None
        self._expected_fn = 1
        self._rx_deadline = None
        self._cr_since = None
        self._discarding = False

    # ------------------------------------------------------------------------------------- sender

    def _bid(self, now: float) -> list[Event]:
        """LIS1-A establishment phase: send ENQ and wait for the reply."""
        self.state = LinkState.AWAIT_ENQ_REPLY
        self._failures = 0
        self._frame_index = 0
        self._tx_deadline = now + self.reply_timeout
        return [Transmit(_ENQ)]

    def _sending(self, now: float, events: list[Event]) -> None:
        """One reply byte while sending; bytes other than ACK, NAK, EOT and ENQ are ignored (LIS1-A transfer phase)."""
        b = self._buf[0]
        del self._buf[:1]
        out = self._queue[0]
        if self.state is LinkState.AWAIT_ENQ_REPLY:
            if b == ACK:
                self.state = LinkState.AWAIT_FRAME_REPLY
                self._frame_index = 0
                self._failures = 0
                self._tx_deadline = now + self.reply_timeout
                events.append(Transmit(out.frames[0]))
            elif b == NAK:
                # LIS1-A establishment: receiver busy: wait before bidding again
                self._retry_at = now + self.busy_delay
                self.state = LinkState.NEUTRAL
                self._tx_deadline = None
                events.append(SendDeferred(out.message_id, self._retry_at, "receiver busy (NAK to ENQ)"))
            elif b == ENQ and self.yield_on_contention:
                # LIS1-A contention: the instrument has priority; the LIS receives, retries later
                self._retry_at = now + self.contention_delay
                self._tx_deadline = None
                events.append(SendDeferred(out.message_id, self._retry_at,
                                           "line contention: the instrument has priority"))
                self.state = LinkState.NEUTRAL
                self._answer_enq(now, events)
            return
        # AWAIT_FRAME_REPLY
        if b in (ACK, EOT):
            # LIS1-A receiver interrupt: EOT in reply to a frame is a receiver interrupt request; it also acknowledges
            # the frame. We finish the message (allowed by the standard) rather than abandon it.
            self._frame_index += 1
            self._failures = 0
            if self._frame_index >= len(out.frames):
                self._queue.popleft()
                self.state = LinkState.NEUTRAL
                self._tx_deadline = None
                events.append(Transmit(_EOT))
                events.append(MessageSent(out.message_id))
                if self._queue and now >= self._retry_at:
                    events += self._bid(now)
            else:
                self._tx_deadline = now + self.reply_timeout
                events.append(Transmit(out.frames[self._frame_index]))
        elif b == NAK:
            events += self._send_failure(now, "NAK")

    def _send_failure(self, now: float, why: str) -> list[Event]:
        """LIS1-A error recovery and sender time-out: repeat the ENQ or frame; abort with EOT after
        ``max_attempts`` failed attempts."""
        out = self._queue[0]
        self._failures += 1
        if self._failures >= self.max_attempts:
            self._queue.popleft()
            self.state = LinkState.NEUTRAL
            self._tx_deadline = None
            self._retry_at = now + self.busy_delay
            log.info("ASTM send of message %r aborted after %d attempts (%s)", out.message_id,
                     self._failures, why)
            return [Transmit(_EOT), SendFailed(out.message_id, f"{self._failures} failed attempts; last: {why}")]
        self._tx_deadline = now + self.reply_timeout
        if self.state is LinkState.AWAIT_ENQ_REPLY:
            return [Transmit(_ENQ)]
        return [Transmit(out.frames[self._frame_index])]
