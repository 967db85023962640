"""HL7 v2 analyser driver: MLLP framing, fast inbound parsing, acknowledgements and host-query answers.

Public API (see each module for the standard it follows):

* :mod:`mllp` - :class:`MllpDecoder` (sans-IO), :func:`encode_block`, events.
* :mod:`message` - :func:`parse_message` (fast HL7 v2 parser), :class:`Message`, :class:`Segment`,
  :class:`ParseError`.
* :mod:`report` - :func:`parse_hl7` (bytes + profile -> ``InstrumentReport``).
* :mod:`acks` - :func:`ack_for`, :func:`build_ack`, :func:`fallback_ack`, :func:`read_msh`, :func:`msh_info`.
* :mod:`replies` - :class:`OrderDescription`, :func:`build_rsp_k11`, :func:`build_oml_o33`,
  :func:`build_qck_q02`, :func:`build_dsr_q03`.
"""

from drivers.hl7.acks import AckCode, AckError, MshInfo, ack_for, build_ack, fallback_ack, msh_info, read_msh
from drivers.hl7.builder import Hl7BuildError, fold_to_ascii
from drivers.hl7.message import Delimiters, Message, ParseError, Segment, escape, parse_message, unescape
from drivers.hl7.mllp import (
    BlockAborted,
    BlockReceived,
    BlockTooLarge,
    MllpDecoder,
    MllpEvent,
    StrayBytes,
    encode_block,
)
from drivers.hl7.replies import OrderDescription, build_dsr_q03, build_oml_o33, build_qck_q02, build_rsp_k11
from drivers.hl7.report import parse_hl7

__all__ = [
    "AckCode",
    "AckError",
    "BlockAborted",
    "BlockReceived",
    "BlockTooLarge",
    "Delimiters",
    "Hl7BuildError",
    "Message",
    "MllpDecoder",
    "MllpEvent",
    "MshInfo",
    "OrderDescription",
    "ParseError",
    "Segment",
    "StrayBytes",
    "ack_for",
    "build_ack",
    "build_dsr_q03",
    "build_oml_o33",
    "build_qck_q02",
    "build_rsp_k11",
    "encode_block",
    "escape",
    "fallback_ack",
    "fold_to_ascii",
    "msh_info",
    "parse_hl7",
    "parse_message",
    "read_msh",
    "unescape",
]
