"""Byte-level fault injection for the simulator (``--faults``), each applied once unless noted.

* ``bad-checksum``: the first data frame goes out with a wrong checksum (LIS1-A: the LIS must NAK it; the
  sender retransmits the correct frame).
* ``duplicate-frame``: the first data frame is sent twice (as after a lost ACK; the LIS must ACK and not
  deliver twice).
* ``drop-ack``: the first ACK from the LIS is dropped (the sender times out and retransmits).
* ``garbage``: random bytes (no ENQ, no VT) are written before the first message.
* ``oversize``: one frame / block far over the size limit is sent before the first message.
"""

from __future__ import annotations

import random

from drivers.transports.stream import ByteStream

FAULTS = ("bad-checksum", "duplicate-frame", "drop-ack", "garbage", "oversize")


def parse_faults(text: str) -> set[str]:
    wanted = {f.strip() for f in text.split(",") if f.strip()}
    unknown = wanted - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown fault {sorted(unknown)[0]!r}; known: {', '.join(FAULTS)}")
    return wanted


class FaultyStream:
    """Wraps a stream and applies the faults to the first matching bytes (ASTM framing or MLLP)."""

    def __init__(self, inner: ByteStream, faults: set[str], protocol: str, rng: random.Random | None = None,
                 oversize: int = 70_000) -> None:
        self._inner = inner
        self.pending = set(faults)
        self._protocol = protocol
        self._rng = rng or random.Random(7)
        self._oversize = oversize
        self.peer = inner.peer
        self._swallow = 0  # ACKs to drop (drop-ack; the second ACK of a duplicated frame)

    async def read(self) -> bytes:
        while True:
            data = await self._inner.read()
            if self._protocol != "astm" or not data:
                return data
            if "drop-ack" in self.pending and b"\x06" in data:
                self.pending.discard("drop-ack")
                self._swallow += 1
            while self._swallow and b"\x06" in data:
                i = data.index(b"\x06")
                data = data[:i] + data[i + 1:]
                self._swallow -= 1
            if data:
                return data

    def write(self, data: bytes) -> None:
        if "garbage" in self.pending:
            self.pending.discard("garbage")
            junk = bytes(self._rng.choice(b"ABCxyz0123|^\r\n\x00\xff") for _ in range(200))
            self._inner.write(junk)
        if "oversize" in self.pending and (data[:1] in (b"\x05", b"\x0b")):
            self.pending.discard("oversize")
            if self._protocol == "astm":
                self._inner.write(b"\x05")
                self._inner.write(b"\x021" + b"X" * self._oversize + b"\x0300\r\n" + b"\x04")
            else:
                self._inner.write(b"\x0bMSH|^~\\&|SIM|X|LIS||20260101||ORU^R01|BIG|P|2.5.1\r"
                                  + b"OBX|1|ST|X||" + b"A" * self._oversize + b"\r\x1c\r")
        if self._protocol == "astm" and data[:1] == b"\x02" and len(data) > 6:
            if "bad-checksum" in self.pending:
                self.pending.discard("bad-checksum")
                bad = bytearray(data)
                i = len(bad) - (3 if bad.endswith(b"\r\n") else 2)  # second checksum character
                bad[i] = ord("0") if bad[i] != ord("0") else ord("1")
                self._inner.write(bytes(bad))
                return
            if "duplicate-frame" in self.pending:
                self.pending.discard("duplicate-frame")
                self._inner.write(data)  # as if our first copy's ACK was lost: the LIS ACKs both copies
                self._swallow += 1
        self._inner.write(data)

    async def drain(self) -> None:
        await self._inner.drain()

    async def close(self) -> None:
        await self._inner.close()
