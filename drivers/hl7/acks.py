"""HL7 v2 acknowledgements (original acknowledgement mode, HL7 v2.5.1 2.9.2), built and validated with hl7apy.

* MSH mirrors the sender: version MSH-12 (2.3.1 / 2.4 / 2.5.1 ...), character set MSH-18, processing id MSH-11;
  MSH-3/4 and MSH-5/6 swap (HL7 v2.5.1 2.9.2.1).
* MSH-9 is ``ACK^<incoming trigger>^ACK`` (``ACK^R01`` for ORU^R01, ``ACK^R22`` for IHE LAW LAB-29 OUL^R22;
  HL7 v2.3.1 has no message structure component, so ``ACK^R01`` there).
* MSA-1 AA / AE / AR; MSA-2 echoes MSH-10 (HL7 v2.5.1 2.9.2: "MSA-2 echoes MSH-10"); MSA-3 free text.
* ERR for AE/AR: v2.3.1 and v2.4 use ERR-1 (ELD: segment ^ sequence ^ field ^ code&text&HL70357); v2.5 and
  later use ERR-2 (ERL location), ERR-3 (HL7 table 0357 code, required), ERR-4 (severity, required),
  ERR-7 (diagnostics) and ERR-8 (user message).

:func:`fallback_ack` is written by hand for input whose MSH cannot be read at all (AR, empty MSA-2).
:func:`ack_for` is what a transport calls: it reads the MSH of the raw bytes and picks one or the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hl7apy.exceptions import HL7apyException

from drivers.hl7.builder import (
    Hl7BuildError,
    codec_for,
    finish,
    fold_to_ascii,
    new_control_id,
    new_message,
    reply_version,
    set_field,
)
from drivers.hl7.dtm import format_dtm
from drivers.hl7.message import Message, ParseError, escape, parse_message

log = logging.getLogger(__name__)

AckCode = Literal["AA", "AE", "AR"]

# HL7 table 0357, message error condition codes.
ERROR_TEXT: dict[int, str] = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}


@dataclass(frozen=True, slots=True)
class MshInfo:
    """What an answer needs from the incoming MSH (fields as sent, still ER7-escaped)."""

    control_id: str = ""  # MSH-10
    version: str = ""  # MSH-12.1
    message_code: str = ""  # MSH-9.1
    trigger: str = ""  # MSH-9.2
    sending_application: str = ""  # MSH-3
    sending_facility: str = ""  # MSH-4
    receiving_application: str = ""  # MSH-5
    receiving_facility: str = ""  # MSH-6
    processing_id: str = "P"  # MSH-11.1
    charset: str = ""  # MSH-18 (first repetition)
    codec: str = "utf-8"  # codec the message was decoded with


@dataclass(frozen=True, slots=True)
class AckError:
    """One error to report in ERR (code from HL7 table 0357; location optional)."""

    code: int = 207
    diagnostic: str = ""
    segment: str = ""
    sequence: int | None = None
    field: int | None = None
    severity: Literal["E", "W", "I"] = "E"


def read_msh(raw: bytes, encoding: str | None = None) -> MshInfo:
    """The incoming MSH as :class:`MshInfo`; raises :class:`ParseError` when there is no readable MSH."""
    return msh_info(parse_message(raw, encoding))


def msh_info(parsed: Message) -> MshInfo:
    """:class:`MshInfo` of an already parsed message."""
    msh = parsed.msh
    charset = msh.repeats(18)
    return MshInfo(
        control_id=msh.value(10),
        version=msh.value(12, 1),
        message_code=msh.value(9, 1),
        trigger=msh.value(9, 2),
        sending_application=msh.field(3),
        sending_facility=msh.field(4),
        receiving_application=msh.field(5),
        receiving_facility=msh.field(6),
        processing_id=msh.value(11, 1) or "P",
        charset=charset[0] if charset else "",
        codec=parsed.codec,
    )


def build_ack(
    incoming: MshInfo,
    code: AckCode,
    text: str = "",
    error: AckError | None = None,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    sending_application: str = "LIS",
    sending_facility: str = "",
) -> bytes:
    """An ACK for ``incoming`` (not MLLP-framed), validated with hl7apy in the sender's version."""
    if code not in ("AA", "AE", "AR"):
        raise ValueError(f"acknowledgement code must be AA, AE or AR, not {code!r}")
    version = reply_version(incoming.version)
    trigger = incoming.trigger or "R01"
    msg_type = f"ACK^{trigger}" if version in ("2.1", "2.2", "2.3") else f"ACK^{trigger}^ACK"
    msg = new_message(
        "ACK",
        version,
        msg_type,
        control_id=control_id,
        now=now,
        sending=(sending_application, sending_facility),
        receiving=("", ""),
        processing_id=incoming.processing_id,
        charset=incoming.charset,
    )
    set_field(msg.msh, "msh_5", incoming.sending_application)
    set_field(msg.msh, "msh_6", incoming.sending_facility)
    msg.msa.msa_1 = code
    if incoming.control_id:
        msg.msa.msa_2 = escape(incoming.control_id)
    if text:
        msg.msa.msa_3 = escape(text)
    if code != "AA" or error is not None:
        _add_err(msg, version, error or AckError(diagnostic=text))
    return finish(msg, codec_for(incoming.charset, incoming.codec))


def _add_err(msg: object, version: str, error: AckError) -> None:
    err = msg.add_segment("ERR")  # type: ignore[attr-defined]
    label = ERROR_TEXT.get(error.code, "Error")
    where = [error.segment, _num(error.sequence), _num(error.field)]
    if version in ("2.1", "2.2", "2.3", "2.3.1", "2.4"):
        err.err_1 = "^".join([*where, f"{error.code}&{escape(label)}&HL70357"])
        return
    if error.segment:
        err.err_2 = "^".join(where).rstrip("^")
    err.err_3 = f"{error.code}^{escape(label)}^HL70357"
    err.err_4 = error.severity
    if error.diagnostic:
        err.err_7 = escape(error.diagnostic)
        err.err_8 = escape(error.diagnostic)


def _num(value: int | None) -> str:
    return "" if value is None else str(value)


def fallback_ack(
    reason: str,
    *,
    code: AckCode = "AR",
    acknowledged_id: str = "",
    control_id: str | None = None,
    now: datetime | None = None,
    sending_application: str = "LIS",
) -> bytes:
    """A minimal HL7 v2.5.1 ``ACK`` written by hand, ASCII only, for input whose MSH cannot be read at all.

    MSA-2 is the sender's MSH-10 when known (``acknowledged_id``), else empty (MSA-2 is required, so hl7apy
    reads such an ACK only at tolerant level); ERR-3 is 100 (segment sequence error: no MSH first) when the
    id is unknown, else 207 (application internal error).
    """
    stamp = format_dtm(now or datetime.now(UTC))
    cid = escape(control_id or new_control_id())
    text = escape(_ascii(reason))[:200]
    error = 207 if acknowledged_id else 100
    segments = [
        f"MSH|^~\\&|{escape(_ascii(sending_application))}||||{stamp}||ACK|{cid}|P|2.5.1",
        f"MSA|{code}|{escape(_ascii(acknowledged_id))}|{text}",
        f"ERR|||{error}^{ERROR_TEXT[error]}^HL70357|E||||{text}",
    ]
    return ("\r".join(segments) + "\r").encode("ascii")


def _ascii(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in fold_to_ascii(text))


def ack_for(
    raw: bytes,
    code: AckCode,
    text: str = "",
    error: AckError | None = None,
    *,
    encoding: str | None = None,
    control_id: str | None = None,
    now: datetime | None = None,
    sending_application: str = "LIS",
) -> bytes:
    """The acknowledgement for raw incoming bytes; never raises for any input.

    :func:`build_ack` when the MSH can be read; :func:`fallback_ack` (AR) when it cannot, or (same code,
    MSA-2 echoed) when the sender's MSH is so odd that hl7apy cannot build a valid answer from it.
    """
    try:
        incoming = read_msh(raw, encoding)
    except ParseError as exc:
        return fallback_ack(f"{exc}", control_id=control_id, now=now, sending_application=sending_application)
    try:
        return build_ack(
            incoming, code, text, error, control_id=control_id, now=now, sending_application=sending_application
        )
    except (Hl7BuildError, HL7apyException) as exc:
        log.warning("ACK for message %s built by hand: %s", incoming.control_id[:20], exc)
        return fallback_ack(
            text or str(exc),
            code=code,
            acknowledged_id=incoming.control_id,
            control_id=control_id,
            now=now,
            sending_application=sending_application,
        )
