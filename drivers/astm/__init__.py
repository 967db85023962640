"""ASTM analyser interface, sans-IO: CLSI LIS1-A link layer and LIS2-A2 records.

* :mod:`drivers.astm.framing`: LIS1-A frames (build, split, checksum, de-frame captures).
* :mod:`drivers.astm.delimiters`: LIS2-A2 delimiters and escape sequences.
* :mod:`drivers.astm.records`: typed LIS2-A2 records, ``decode_message`` / ``encode_message``.
* :mod:`drivers.astm.link`: the LIS1-A link state machine (receiver and sender) with journal-before-ACK.
* :mod:`drivers.astm.report`: ``parse_astm`` -> :class:`lis.instrument_report.InstrumentReport`.
* :mod:`drivers.astm.orders`: host-query answers (order download, "no information").
"""

from drivers.astm.delimiters import DEFAULT_DELIMITERS, Delimiters, RecordError
from drivers.astm.framing import (
    Frame,
    FrameError,
    build_frame,
    checksum,
    deframe,
    frame_message,
    iter_frames,
    split_records,
)
from drivers.astm.link import (
    AstmLink,
    Event,
    FrameRejected,
    LinkState,
    MessageReceived,
    MessageSent,
    SendDeferred,
    SendFailed,
    TransferAborted,
    TransferEnded,
    Transmit,
)
from drivers.astm.orders import (
    OrderDescription,
    build_no_order_message,
    build_order_message,
    build_order_records,
    fold_to_ascii,
)
from drivers.astm.records import (
    CommentRecord,
    HeaderRecord,
    ManufacturerRecord,
    OrderRecord,
    PatientRecord,
    QueryRecord,
    Record,
    ResultRecord,
    ScientificRecord,
    TerminatorRecord,
    UnknownRecord,
    decode_message,
    encode_message,
)
from drivers.astm.report import parse_astm

__all__ = [
    "DEFAULT_DELIMITERS",
    "AstmLink",
    "CommentRecord",
    "Delimiters",
    "Event",
    "Frame",
    "FrameError",
    "FrameRejected",
    "HeaderRecord",
    "LinkState",
    "ManufacturerRecord",
    "MessageReceived",
    "MessageSent",
    "OrderDescription",
    "OrderRecord",
    "PatientRecord",
    "QueryRecord",
    "Record",
    "RecordError",
    "ResultRecord",
    "ScientificRecord",
    "SendDeferred",
    "SendFailed",
    "TerminatorRecord",
    "TransferAborted",
    "TransferEnded",
    "Transmit",
    "UnknownRecord",
    "build_frame",
    "build_no_order_message",
    "build_order_message",
    "build_order_records",
    "checksum",
    "decode_message",
    "deframe",
    "encode_message",
    "fold_to_ascii",
    "frame_message",
    "iter_frames",
    "parse_astm",
    "split_records",
]
