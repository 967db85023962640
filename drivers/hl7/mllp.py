"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol, HL7 v2.5.1 Appendix C.4), sans-IO.

A block on the wire is ``VT (0x0B) <message bytes> FS (0x1C) CR (0x0D)``. :class:`MllpDecoder` is a pure
state machine in the style of h11: feed it whatever the transport read (:meth:`MllpDecoder.receive`) with the
current time, and it returns events; it never reads a socket, sleeps or starts a thread. The transports (TCP
server, TCP client) own the I/O and call :meth:`MllpDecoder.check_timeout` from their own timer.

Tolerances, each documented because analysers really do these things:

* bytes before a VT (noise, a keep-alive, a CR left over from the last block) are skipped and reported once
  per run as :class:`StrayBytes` (information only, nothing to answer);
* a block ended by FS without the CR (some middleware) is accepted when the next byte is a VT, when the idle
  timeout expires after the FS, or at once at the end of a chunk when ``accept_fs_without_cr`` is true (for
  senders known to omit the CR); an FS followed by any other byte is taken as data;
* a VT inside a block restarts the block (the sender gave up on the previous one): the partial block is
  reported as :class:`BlockAborted` and never delivered;
* a block larger than ``max_block_size`` yields :class:`BlockTooLarge`; the decoder then discards bytes until
  the next VT (resynchronisation) instead of buffering without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

VT = 0x0B
FS = 0x1C
CR = 0x0D
START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_BLOCK_SIZE = 16 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 30.0


def encode_block(message: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP block: ``VT message FS CR`` (HL7 v2.5.1 C.4.2)."""
    if b"\x0b" in message or b"\x1c" in message:
        raise ValueError("an HL7 message must not contain the MLLP start (VT) or end (FS) byte")
    return START_BLOCK + message + END_BLOCK


@dataclass(frozen=True, slots=True)
class BlockReceived:
    """A complete block: ``data`` is the HL7 message without VT/FS/CR."""

    data: bytes
    missing_cr: bool = False  # ended by FS then VT (or end of data when accepted) instead of FS CR


@dataclass(frozen=True, slots=True)
class StrayBytes:
    """Bytes outside any block (before a VT), skipped."""

    count: int


@dataclass(frozen=True, slots=True)
class BlockTooLarge:
    """A block exceeded the size limit; it is discarded up to the next VT."""

    limit: int


@dataclass(frozen=True, slots=True)
class BlockAborted:
    """A started block was abandoned: a new VT arrived before FS, or the idle timeout expired."""

    size: int
    reason: str


MllpEvent = BlockReceived | StrayBytes | BlockTooLarge | BlockAborted

_IDLE, _IN_BLOCK, _AFTER_FS, _DISCARD = range(4)


class MllpDecoder:
    """Incremental MLLP block decoder; feed bytes and the clock, get events.

    ``idle_timeout`` (seconds) bounds how long a started block may wait for its next byte; the transport calls
    :meth:`check_timeout` with the current time (for example from a periodic timer).
    """

    def __init__(
        self,
        max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        accept_fs_without_cr: bool = False,
    ) -> None:
        if max_block_size < 1:
            raise ValueError("max_block_size must be positive")
        self.max_block_size = max_block_size
        self.idle_timeout = idle_timeout
        self.accept_fs_without_cr = accept_fs_without_cr
        self._state = _IDLE
        self._buf = bytearray()
        self._stray = 0
        self._last_activity: float | None = None

    @property
    def in_block(self) -> bool:
        """True while a block has started (VT seen) and is not finished."""
        return self._state in (_IN_BLOCK, _AFTER_FS)

    def deadline(self) -> float | None:
        """When :meth:`check_timeout` will abort the current block, or None when no block is open."""
        if not self.in_block or self._last_activity is None:
            return None
        return self._last_activity + self.idle_timeout

    def receive(self, data: bytes, now: float) -> list[MllpEvent]:
        """Feed bytes read from the transport at time ``now``; return the events they complete."""
        events: list[MllpEvent] = []
        if not data:
            return events
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state in (_IDLE, _DISCARD):
                j = data.find(START_BLOCK, i)
                skipped = (n if j < 0 else j) - i
                if state == _IDLE:
                    self._stray += skipped
                if j < 0:
                    break
                self._flush_stray(events)
                self._state = _IN_BLOCK
                self._buf.clear()
                i = j + 1
            elif state == _IN_BLOCK:
                fs = data.find(b"\x1c", i)
                vt = data.find(START_BLOCK, i)
                if vt >= 0 and (fs < 0 or vt < fs):
                    if not self._append(data[i:vt], events):
                        i = vt
                        continue
                    events.append(BlockAborted(len(self._buf), "a new block started before this one ended"))
                    self._buf.clear()
                    i = vt + 1
                    continue
                end = n if fs < 0 else fs
                if not self._append(data[i:end], events):
                    i = end
                    continue
                if fs < 0:
                    break
                self._state = _AFTER_FS
                i = fs + 1
            else:  # _AFTER_FS
                byte = data[i]
                if byte == CR:
                    events.append(BlockReceived(bytes(self._buf)))
                    self._reset()
                    i += 1
                elif byte == VT:
                    events.append(BlockReceived(bytes(self._buf), missing_cr=True))
                    self._reset()
                else:  # the FS was data: keep it and carry on inside the block
                    self._state = _IN_BLOCK
                    if not self._append(b"\x1c", events):
                        continue
        self._last_activity = now
        if self._state == _AFTER_FS and self.accept_fs_without_cr:
            events.append(BlockReceived(bytes(self._buf), missing_cr=True))
            self._reset()
        if self._state == _IDLE:
            self._flush_stray(events)
        return events

    def check_timeout(self, now: float) -> list[MllpEvent]:
        """Abort a block that has been waiting more than ``idle_timeout`` seconds for its next byte."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        if self._state == _AFTER_FS:  # FS arrived, the CR never did: the block is complete
            event: MllpEvent = BlockReceived(bytes(self._buf), missing_cr=True)
        else:
            event = BlockAborted(len(self._buf), f"no end of block within {self.idle_timeout:g} s")
        self._reset()
        return [event]

    def _append(self, chunk: bytes, events: list[MllpEvent]) -> bool:
        """Buffer ``chunk``; on overflow report it, drop the block and return False (now discarding)."""
        if len(self._buf) + len(chunk) > self.max_block_size:
            events.append(BlockTooLarge(self.max_block_size))
            self._buf.clear()
            self._state = _DISCARD
            return False
        self._buf += chunk
        return True

    def _flush_stray(self, events: list[MllpEvent]) -> None:
        if self._stray:
            events.append(StrayBytes(self._stray))
            self._stray = 0

    def _reset(self) -> None:
        self._state = _IDLE
        self._buf = bytearray()
