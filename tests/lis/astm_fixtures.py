"""Hand-written LIS2-A2 messages for the core's tests (our own fixtures, not third-party captures)."""

from __future__ import annotations


def astm_message(specimen: str, results: list[tuple[str, str, str]], *, qc: bool = False,
                 stamp: str = "20261126083000", lot: str = "") -> bytes:
    """H, P, O, R..., L records separated by CR (unframed), as the ASTM codec accepts them."""
    action = "Q" if qc else "N"
    records = [
        "H|\\^&|||XN-550^00-22^12345^^^^BR123||||||||E1394-97",
        "P|1||PID1||Sample^Test||19800101|F",
        f"O|1|{specimen}^{lot}||^^^CBC|R|{stamp}|||||{action}||||||||||||||F",
    ]
    for i, (code, value, unit) in enumerate(results, start=1):
        records.append(f"R|{i}|^^^{code}|{value}|{unit}|1.0-9.9|N||F||||{stamp}")
    records.append("L|1|N")
    return ("\r".join(records) + "\r").encode("latin-1")
