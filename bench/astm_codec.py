"""Benchmark: ASTM LIS2-A2 decoding and LIS1-A link-layer receive throughput.

Prints messages/s for a 24-record message (H, P, O, 20 R, L) decoded by ``decode_message`` and by a
naive hand-written split of the same bytes (records, then fields) in the same run, and their ratio;
then frames/s for the link layer receiving the message framed at 240 characters per frame (including
the ACKs it produces and the journal acknowledgement of the last frame).

Run: ``.venv/bin/python bench/astm_codec.py``
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drivers.astm.framing import frame_message
from drivers.astm.link import AstmLink, MessageReceived
from drivers.astm.records import decode_message

CODES = ["WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "PLT", "RDW-CV", "MPV", "NEUT%", "LYMPH%", "MONO%",
         "EO%", "BASO%", "NEUT#", "LYMPH#", "MONO#", "EO#", "BASO#"]


def sample_message() -> bytes:
    """H, P, O, 20 R, L: a typical haematology result message (24 records)."""
    records = [
        "H|\\^&|||XN-550^00-24^22723^^^^BD634545||||||||E1394-97",
        "P|1|||37182|^Jim^Brown||19870626|M|||||^DR.1||||||||||||^^^WEST",
        "O|1||^^                    27^M|" + "\\".join(f"^^^^{c}" for c in CODES) + "|||||||N||||||||||||||F",
    ]
    records += [f"R|{i}|^^^^{code}^1|{i}.{i:02d}|10*3/uL||N||F||||20240627135407" for i, code in
                enumerate(CODES, start=1)]
    records.append("L|1|N")
    return ("\r".join(records) + "\r").encode("latin-1")


def naive_field_split(data: bytes) -> list[list[str]]:
    """The bare minimum: decode, split records on CR, split fields on '|' (no delimiters from H)."""
    text = data.decode("latin-1")
    result = []
    for line in text.split("\r"):
        if line:
            result.append(line.split("|"))
    return result


def naive_split(data: bytes) -> list[list[list[list[str]]]]:
    """A 15-line hand-written parser: delimiters from H, then records -> fields -> repeats -> components.

    No escapes, no types, no validation, no framing: what one writes in an afternoon.
    """
    text = data.decode("latin-1")
    field, repeat, component = "|", "\\", "^"
    result = []
    for line in text.split("\r"):
        if not line:
            continue
        if line[0] == "H":
            field, repeat, component = line[1], line[2], line[3]
            fields = [line[:1], line[2:5], *line.split(field)[2:]]
        else:
            fields = line.split(field)
        result.append([[rep.split(component) for rep in f.split(repeat)] for f in fields])
    return result


def rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (best of 3 rounds)."""
    best = 0.0
    for _ in range(3):
        n = 0
        batch = 200
        start = time.perf_counter()
        while True:
            for _ in range(batch):
                fn()
            n += batch
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        best = max(best, n / elapsed)
    return best


def link_receive(frames: list[bytes]) -> int:
    link = AstmLink()
    link.receive(b"\x05", 0.0)
    for frame in frames:
        for event in link.receive(frame, 0.0):
            if isinstance(event, MessageReceived):
                link.acknowledge(0.0)
    link.receive(b"\x04", 0.0)
    return len(frames)


def main() -> None:
    data = sample_message()
    assert len(decode_message(data)) == 24 == len(naive_split(data)) == len(naive_field_split(data))
    ours = rate(lambda: decode_message(data))
    naive = rate(lambda: naive_split(data))
    bare = rate(lambda: naive_field_split(data))
    print(f"message: 24 records, {len(data)} bytes")
    print(f"decode_message (typed records)    : {ours:12,.0f} messages/s")
    print(f"naive split (fields+components)   : {naive:12,.0f} messages/s")
    print(f"bare field split (fields only)    : {bare:12,.0f} messages/s")
    print(f"ratio ours/naive split            : {ours / naive:.2f} (target >= 0.5)")
    print(f"ratio ours/bare field split       : {ours / bare:.2f}")

    frames = frame_message(data, text_size=240)
    transfers = rate(lambda: link_receive(frames))
    print(f"link receive   : {transfers * len(frames):12,.0f} frames/s "
          f"({transfers:,.0f} transfers/s of {len(frames)} frames, {len(data) * transfers / 1e6:.1f} MB/s of text)")
    small = frame_message(data, text_size=32)
    transfers_small = rate(lambda: link_receive(small))
    print(f"link receive   : {transfers_small * len(small):12,.0f} frames/s at 32-character frames")


if __name__ == "__main__":
    main()
