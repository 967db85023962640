"""Reading the EMR's acknowledgement (HL7 v2.5.1 2.9.2, original mode): MSA-1 decides the fate of an ORU.

* ``AA`` / ``CA``: delivered.
* ``AE`` / ``AR`` / ``CE`` / ``CR``: the EMR understood and refused: dead letter with its reason (MSA-3,
  ERR-8 user message or ERR-7 diagnostics), never retried blindly.
* Anything unreadable, or an MSA-2 that does not echo our MSH-10: :class:`MalformedAck` (retried).
"""

from __future__ import annotations

from dataclasses import dataclass

from interfaces.er7 import unescape

ACCEPT = ("AA", "CA")
REJECT = ("AE", "AR", "CE", "CR")


class MalformedAck(ValueError):
    """The answer is not an HL7 acknowledgement we can trust."""


@dataclass(frozen=True, slots=True)
class AckInfo:
    code: str  # MSA-1
    control_id: str  # MSA-2
    text: str  # MSA-3, else ERR-8 / ERR-7 / ERR-3 text

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPT


def parse_ack(raw: bytes, expected_control_id: str | None = None) -> AckInfo:
    """Parse an ACK; check MSA-2 against ``expected_control_id`` when given."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r")
    segments = [s for s in text.split("\r") if s.strip()]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise MalformedAck("no MSH segment in the acknowledgement")
    sep = segments[0][3]
    msa = next((s.split(sep) for s in segments if s.startswith("MSA" + sep)), None)
    if msa is None:
        raise MalformedAck("no MSA segment in the acknowledgement")
    code = msa[1].strip() if len(msa) > 1 else ""
    if code not in ACCEPT + REJECT:
        raise MalformedAck(f"MSA-1 {code!r} is not an acknowledgement code")
    control_id = unescape(msa[2].strip()) if len(msa) > 2 else ""
    if expected_control_id is not None and control_id != expected_control_id:
        raise MalformedAck(f"MSA-2 {control_id!r} does not echo the message control id {expected_control_id!r}")
    reason = unescape(msa[3]).strip() if len(msa) > 3 else ""
    if not reason:
        for seg in segments:
            if seg.startswith("ERR" + sep):
                fields = seg.split(sep)
                for idx in (8, 7, 3, 1):
                    if len(fields) > idx and fields[idx].strip():
                        reason = unescape(fields[idx].replace("^", " ").strip())
                        break
                if reason:
                    break
    return AckInfo(code, control_id, reason)
