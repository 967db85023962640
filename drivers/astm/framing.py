"""CLSI LIS1-A (ASTM E1381) frames: build, split, verify and strip them.

A frame is ``STX FN text ETB|ETX C1 C2 CR LF`` (LIS1-A frame format). ``FN`` is one ASCII digit, ``1`` for the
first frame of a transfer, then ``2``..``7``, ``0``, ``1``... (modulo 8, continuing across the records
of one transfer). ``ETB`` ends an intermediate frame of a record split over several frames, ``ETX`` the
last frame of a record. ``C1 C2`` is the checksum: the sum of the bytes from ``FN`` up to and including
``ETB``/``ETX``, modulo 256, as two upper-case hexadecimal digits (lower case is accepted on input).

This module is pure: bytes in, bytes out. The link-layer state machine (:mod:`drivers.astm.link`) and
the capture reader (:func:`deframe`) are built on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

ENQ = 0x05
ACK = 0x06
NAK = 0x15
EOT = 0x04
STX = 0x02
ETX = 0x03
ETB = 0x17
CR = 0x0D
LF = 0x0A

STANDARD_TEXT_SIZE = 240
"""LIS1-A maximum frame: at most 240 text characters per frame (247 bytes with the framing characters)."""

_HEX = b"0123456789ABCDEF"
_LINK_CONTROL = bytes((ENQ, ACK, NAK, EOT))


class FrameError(ValueError):
    """A frame is malformed (missing STX, terminator, or a bad frame number); the text says which."""


def checksum(body: bytes) -> bytes:
    """LIS1-A checksum: two upper-case hex digits of ``sum(FN .. ETB|ETX) mod 256``."""
    total = sum(body) & 0xFF
    return bytes((_HEX[total >> 4], _HEX[total & 0x0F]))


def checksum_matches(body: bytes, given: bytes) -> bool:
    """Compare a received checksum (upper or lower case hex) with the one ``body`` needs."""
    return len(given) == 2 and given.upper() == checksum(body)


def next_frame_number(fn: int) -> int:
    """LIS1-A frame number: frame numbers run 1..7, 0, 1, ... (modulo 8)."""
    return (fn + 1) % 8


def build_frame(fn: int, text: bytes, *, last: bool) -> bytes:
    """One frame ``STX FN text ETB|ETX C1 C2 CR LF``; ``last`` selects ETX (end of record) over ETB."""
    if not 0 <= fn <= 7:
        raise FrameError(f"frame number must be 0..7, got {fn}")
    body = bytes((0x30 + fn,)) + text + bytes((ETX if last else ETB,))
    return b"\x02" + body + checksum(body) + b"\r\n"


def split_records(records: bytes) -> list[bytes]:
    """The records of a message, each ending with its CR (LIS2-A2: a record ends with CR).

    LF and CRLF record ends (de-framed captures) are normalised to CR; empty lines are dropped.
    """
    text = records.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return [r + b"\r" for r in text.split(b"\r") if r]


def frame_message(records: bytes, *, text_size: int = STANDARD_TEXT_SIZE, first_fn: int = 1) -> list[bytes]:
    """Split a message (records separated by CR) into frames for one transfer.

    LIS1-A intermediate and end frames, frame number: each record starts a new frame; a record
    longer than ``text_size`` is split, every piece but the last ending with ETB and the last with
    ETX. Frame numbers start at ``first_fn`` and continue across the records of the transfer, modulo 8.
    """
    if text_size < 1:
        raise FrameError(f"frame text size must be at least 1, got {text_size}")
    frames: list[bytes] = []
    fn = first_fn
    for record in split_records(records):
        for start in range(0, len(record), text_size):
            piece = record[start : start + text_size]
            frames.append(build_frame(fn, piece, last=start + text_size >= len(record)))
            fn = next_frame_number(fn)
    return frames


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame read from a capture: its number, text, terminator and whether its checksum was right."""

    number: int
    text: bytes
    last: bool  # ETX (end of record) rather than ETB
    checksum_ok: bool
    raw: bytes


def parse_frame(raw: bytes) -> Frame:
    """Read one complete frame ``STX FN text ETB|ETX C1 C2 CR [LF]`` (the LF is optional on input)."""
    if len(raw) < 6 or raw[0] != STX:
        raise FrameError("frame does not start with STX or is too short")
    end = raw.rstrip(b"\r\n")
    if len(end) < 5 or end[-3] not in (ETX, ETB):
        raise FrameError("frame does not end with ETX/ETB followed by a two-digit checksum")
    fn_byte = end[1]
    if not 0x30 <= fn_byte <= 0x37:
        raise FrameError(f"frame number {chr(fn_byte)!r} is not a digit 0..7")
    body = end[1:-2]
    return Frame(
        number=fn_byte - 0x30,
        text=end[2:-3],
        last=end[-3] == ETX,
        checksum_ok=checksum_matches(body, end[-2:]),
        raw=raw,
    )


def iter_frames(data: bytes) -> Iterator[Frame]:
    """The frames of a captured transfer, tolerating what real captures contain.

    Bytes outside frames (ENQ, ACK, NAK, EOT, stray CR/LF) are skipped. A frame ends at the first ETX
    or ETB after its STX; the two checksum characters and CR/LF after it are read if present. Frame
    numbers are *not* checked (post-processed captures repeat them) and a frame may be far longer than
    240 characters (joined frames). Checksum problems are reported in :attr:`Frame.checksum_ok`.
    """
    pos = 0
    size = len(data)
    while True:
        start = data.find(b"\x02", pos)
        if start < 0 or start + 1 >= size:
            return
        etx = data.find(b"\x03", start + 1)
        etb = data.find(b"\x17", start + 1)
        candidates = [i for i in (etx, etb) if i >= 0]
        if not candidates:
            return  # an unfinished frame at the end of the capture carries nothing complete
        term = min(candidates)
        nested = data.find(b"\x02", start + 1, term)
        if nested >= 0:  # an STX before any terminator: the earlier frame was cut short
            pos = nested
            continue
        end = min(term + 3, size)
        while end < size and data[end] in (CR, LF):
            end += 1
        raw = data[start:end]
        fn_byte = data[start + 1]
        body = data[start + 1 : term + 1]
        yield Frame(
            number=fn_byte - 0x30 if 0x30 <= fn_byte <= 0x37 else -1,
            text=data[start + 2 : term],
            last=data[term] == ETX,
            checksum_ok=checksum_matches(body, data[term + 1 : term + 3]),
            raw=raw,
        )
        pos = end


def is_framed(data: bytes) -> bool:
    """True when ``data`` holds LIS1-A frames (an STX followed later by ETX or ETB)."""
    start = data.find(b"\x02")
    return start >= 0 and (data.find(b"\x03", start) >= 0 or data.find(b"\x17", start) >= 0)


def deframe(data: bytes) -> bytes:
    """The message text (records separated by CR) of a captured transfer.

    Accepts raw wire captures (ENQ, frames, EOT), post-processed captures (long joined frames,
    repeated frame numbers, CR-only frame ends) and already unframed records (LF or CRLF line ends,
    which are normalised to CR). Frame texts are concatenated in order: ETB continuation pieces join
    the next frame's text (LIS1-A intermediate frames). Link control characters outside frames are dropped.
    """
    if not is_framed(data):
        stripped = data.translate(None, _LINK_CONTROL)
        return b"".join(split_records(stripped))
    return b"".join(split_records(b"".join(frame.text for frame in iter_frames(data))))
