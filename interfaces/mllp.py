"""MLLP framing for the EMR side (HL7 v2.5.1 Appendix C.4, Minimal Lower Layer Protocol), sans-IO.

A block is ``VT (0x0B) message FS (0x1C) CR (0x0D)``. :class:`MllpFramer` takes whatever a socket read and
returns the complete messages; bytes before a VT are skipped (STANDARDS.md: tolerate stray bytes), a block
larger than ``max_size`` raises :class:`FrameTooLarge`. No sockets, no clock: the callers own the I/O.
"""

from __future__ import annotations

VT = b"\x0b"
FS = b"\x1c"
CR = b"\x0d"
DEFAULT_MAX_SIZE = 16 * 1024 * 1024


class FrameTooLarge(ValueError):
    """A block exceeded the size limit (the peer is not speaking MLLP, or the message is absurd)."""


def frame(message: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP block (HL7 v2.5.1 C.4.2)."""
    if VT in message or FS in message:
        raise ValueError("an HL7 message must not contain the MLLP start (VT) or end (FS) byte")
    return VT + message + FS + CR


class MllpFramer:
    """Incremental decoder: ``feed(bytes)`` returns the messages completed by these bytes."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._buffer = bytearray()
        self._in_block = False
        self._after_fs = False  # an FS was the last byte seen: a CR next is the block's end, not stray
        self.max_size = max_size
        self.stray_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self._after_fs and data[:1] == CR:
            data = data[1:]
        self._after_fs = False
        self._buffer += data
        while True:
            if not self._in_block:
                start = self._buffer.find(VT)
                if start < 0:
                    self.stray_bytes += len(self._buffer)
                    self._buffer.clear()
                    return out
                self.stray_bytes += start
                del self._buffer[: start + 1]
                self._in_block = True
            end = self._buffer.find(FS)
            if end < 0:
                restart = self._buffer.rfind(VT)
                if restart >= 0:  # the sender abandoned the block and started a new one
                    del self._buffer[: restart + 1]
                if len(self._buffer) > self.max_size:
                    self._buffer.clear()
                    self._in_block = False
                    raise FrameTooLarge(f"MLLP block larger than {self.max_size} bytes")
                return out
            block = bytes(self._buffer[:end])
            restart = block.rfind(VT)
            if restart >= 0:
                block = block[restart + 1 :]
            if len(block) > self.max_size:
                del self._buffer[: end + 1]
                self._in_block = False
                raise FrameTooLarge(f"MLLP block larger than {self.max_size} bytes")
            drop = end + 2 if self._buffer[end + 1 : end + 2] == CR else end + 1
            self._after_fs = drop == end + 1 and drop == len(self._buffer)
            del self._buffer[:drop]
            self._in_block = False
            out.append(block)

    @property
    def pending(self) -> int:
        """Bytes of a started, unfinished block."""
        return len(self._buffer) if self._in_block else 0
