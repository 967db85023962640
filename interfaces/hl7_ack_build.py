"""Acknowledgements the LIS sends to the EMR for orders and demographics (HL7 v2.5.1 2.9.2 original mode, 2.14.1
MSA, 2.14.5 ERR), built and validated with hl7apy.

MSH-3/4 and MSH-5/6 swap the sender's; MSH-9 is ``ACK^<trigger>^ACK``; MSA-1 AA / AE / AR, MSA-2 echoes
MSH-10, MSA-3 the text; for AE/AR an ERR with ERR-2 location, ERR-3 (table 0357), ERR-4 severity and
ERR-8 user message. Input whose MSH cannot be read gets a minimal hand-written AR (no MSH to mirror).
"""

from __future__ import annotations

import re
from datetime import datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from interfaces.er7 import dtm, escape
from interfaces.hl7_inbound import MshInfo
from interfaces.outbox import new_message_id

ERROR_TEXT = {0: "Message accepted", 100: "Segment sequence error", 101: "Required field missing",
              102: "Data type error", 103: "Table value not found", 200: "Unsupported message type",
              201: "Unsupported event code", 204: "Unknown key identifier", 205: "Duplicate key identifier",
              207: "Application internal error"}
_WHERE = re.compile(r"^([A-Z][A-Z0-9]{2})(?:-(\d+))?$")


def build_ack(incoming: MshInfo, code: str, text: str = "", *, error_code: int = 207, where: str = "",
              now: datetime, timezone: str, application: str = "OPENLIS") -> bytes:
    """An ACK for ``incoming`` in HL7 v2.5.1, UTF-8, strictly validated."""
    msg = Message("ACK", version="2.5.1", validation_level=VALIDATION_LEVEL.STRICT)
    msh = msg.msh
    msh.msh_3 = escape(application)
    if incoming.receiving_facility:
        msh.msh_4 = escape(incoming.receiving_facility)
    if incoming.sending_application:
        msh.msh_5 = escape(incoming.sending_application)
    if incoming.sending_facility:
        msh.msh_6 = escape(incoming.sending_facility)
    msh.msh_7 = dtm(now, timezone)
    msh.msh_9 = f"ACK^{incoming.trigger or 'O21'}^ACK"
    msh.msh_10 = new_message_id()
    msh.msh_11 = incoming.processing_id if incoming.processing_id in ("P", "D", "T") else "P"
    msh.msh_12 = "2.5.1"
    msh.msh_18 = "UNICODE UTF-8"
    msg.msa.msa_1 = code
    msg.msa.msa_2 = escape(incoming.control_id) or "UNKNOWN"
    if text:
        msg.msa.msa_3 = escape(text[:500])
    if code != "AA":
        err = msg.add_segment("ERR")
        match = _WHERE.match(where)
        if match:
            err.err_2 = match.group(1) + "^1" + (f"^{match.group(2)}" if match.group(2) else "")
        err.err_3 = f"{error_code}^{escape(ERROR_TEXT.get(error_code, 'Error'))}^HL70357"
        err.err_4 = "E"
        if text:
            err.err_8 = escape(text[:500])
    msg.validate()
    return (msg.to_er7() + "\r").encode("utf-8")


def fallback_ack(reason: str, *, now: datetime, timezone: str) -> bytes:
    """A minimal AR for input without a readable MSH (nothing to mirror; MSA-2 empty)."""
    text = escape(reason)[:200]
    return (f"MSH|^~\\&|OPENLIS||||{dtm(now, timezone)}||ACK|{new_message_id()}|P|2.5.1\r"
            f"MSA|AR||{text}\rERR||MSH^1|100^Segment sequence error^HL70357|E||||{text}\r").encode()
