"""Construction of outgoing HL7 v2 messages with hl7apy, shared by :mod:`acks` and :mod:`replies`.

Everything the LIS sends is built as an hl7apy message at ``VALIDATION_LEVEL.STRICT`` and checked with
``Message.validate()`` (structure, cardinality, data types of the version sent) before it is turned into
bytes. hl7apy reads a value assigned to a field as ER7 text, so free text is escaped first
(HL7 v2.5.1 2.7.1, :func:`drivers.hl7.message.escape`).
"""

from __future__ import annotations

import itertools
import logging
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime

from hl7apy import load_library
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message as ApyMessage
from hl7apy.core import Segment as ApySegment
from hl7apy.exceptions import HL7apyException

from drivers.hl7.charset import codec_for_charset
from drivers.hl7.dtm import DEFAULT_TIMEZONE, format_dtm
from drivers.hl7.message import escape

log = logging.getLogger(__name__)

DEFAULT_VERSION = "2.5.1"
SUPPORTED_VERSIONS = ("2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2")
_counter = itertools.count(1)


class Hl7BuildError(ValueError):
    """The LIS could not build a valid HL7 message (a bug or an impossible request); the text says why."""


def reply_version(incoming: str) -> str:
    """The version to answer in: the sender's when hl7apy knows it, else 2.5.1 (HL7 2.5.1 2.9.2.1)."""
    return incoming if incoming in SUPPORTED_VERSIONS else DEFAULT_VERSION


def has_structure(name: str, version: str) -> bool:
    """True when hl7apy defines the message structure ``name`` (e.g. ``RSP_K11``) for ``version``."""
    return name in load_library(version).MESSAGES


def new_control_id() -> str:
    """A message control id (MSH-10, at most 20 characters): time in ms plus a per-process counter."""
    return f"{int(time.time() * 1000)}{next(_counter) % 100000:05d}"[-20:]


def new_message(
    structure: str,
    version: str,
    message_type: str,
    *,
    control_id: str | None,
    now: datetime | None,
    sending: tuple[str, str],
    receiving: tuple[str, str],
    processing_id: str = "P",
    charset: str = "",
    timezone_name: str = DEFAULT_TIMEZONE,
) -> ApyMessage:
    """An hl7apy message of ``structure`` with MSH filled (HL7 v2.5.1 2.14.9)."""
    if not has_structure(structure, version):
        raise Hl7BuildError(f"hl7apy has no {structure} structure for HL7 v{version}")
    msg = ApyMessage(structure, version=version, validation_level=VALIDATION_LEVEL.STRICT)
    msh = msg.msh
    if sending[0]:
        msh.msh_3 = escape(sending[0])
    if sending[1]:
        msh.msh_4 = escape(sending[1])
    if receiving[0]:
        msh.msh_5 = receiving[0]  # echoed as received (already ER7)
    if receiving[1]:
        msh.msh_6 = receiving[1]
    msh.msh_7 = format_dtm(now or datetime.now(UTC), timezone_name)
    msh.msh_9 = message_type
    msh.msh_10 = escape(control_id or new_control_id())
    if not set_field(msh, "msh_11", processing_id or "P"):
        msh.msh_11 = "P"
    msh.msh_12 = version
    set_field(msh, "msh_18", charset)  # mirrored from the sender; dropped if hl7apy refuses it
    return msg


def set_field(segment: ApySegment, name: str, er7: str) -> bool:
    """Assign ER7 text to ``segment.<name>``; False (and a log line) when strict hl7apy refuses it."""
    if not er7:
        return True
    try:
        setattr(segment, name, er7)
    except (HL7apyException, ValueError, TypeError) as exc:
        log.info("dropping field %s from an echoed segment: %s", name, type(exc).__name__)
        log.debug("refused value for %s: %r (%s)", name, er7[:40], exc)  # may carry patient data: DEBUG only
        return False
    return True


def finish(msg: ApyMessage, codec: str, post: Callable[[str], str] | None = None) -> bytes:
    """Validate strictly and encode: every segment ends with CR (HL7 v2.5.1 2.5.2), text in ``codec``.

    ``post`` rewrites the validated ER7 text for a vendor quirk that the standard forbids (documented where used).
    """
    try:
        msg.validate()
    except HL7apyException as exc:
        raise Hl7BuildError(f"built {msg.name} is not valid HL7: {exc}") from exc
    text = msg.to_er7() + "\r"
    return encode_text(post(text) if post else text, codec)


def encode_text(text: str, codec: str) -> bytes:
    """Encode ``text``; characters ``codec`` cannot carry are folded to ASCII ("ấ" -> "a"), else "?"."""
    try:
        return text.encode(codec)
    except UnicodeEncodeError:
        pass
    out = []
    for char in text:
        try:
            out.append(char.encode(codec))
        except UnicodeEncodeError:
            out.append(fold_to_ascii(char).encode(codec, errors="replace"))
    return b"".join(out)


def fold_to_ascii(text: str) -> str:
    """Vietnamese (and other Latin) text without diacritics: "Nông Thị Hoa" -> "Nong Thi Hoa"."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def codec_for(charset: str, default: str = "utf-8") -> str:
    """The codec to write a message whose MSH-18 is ``charset``."""
    return codec_for_charset(charset) or default


def needs_folding(charset: str, fold: bool) -> bool:
    """Fold to ASCII when asked to, or when the character set cannot carry Vietnamese (ASCII, 8859/1)."""
    return fold or codec_for(charset, "ascii") in ("ascii", "iso8859-1")
