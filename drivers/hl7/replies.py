"""Answers to analyser host queries and order downloads, built and validated with hl7apy.

* IHE LAW LAB-27 (query for AWOS): the analyser sends ``QBP^Q11``; the LIS answers ``RSP^K11`` (MSA, QAK with
  QAK-1 = QPD-2 query tag and QAK-2 ``OK`` / ``NF``, QPD echoed), then pushes the work order with
  LAB-28 ``OML^O33`` (HL7 v2.5.1 4.4.10: PID, SPM, SAC, then per test ORC / TQ1 / OBR).
* Mindray BS/BC query (HL7 v2.3.1 ``QRY^Q02``): the LIS answers ``QCK^Q02`` (QAK-2 ``OK`` or ``NF``) and, when
  orders exist, ``DSR^Q03`` echoing QRD/QRF with the order as DSP lines (DSP-3 = data line; layout of the
  Mindray BS-series host interface manual: DSP 1-20 patient, 21 barcode, 22 sample id, 23 sample time,
  24 STAT Y/N, 25 volume, 26 sample type, 27 doctor, 28 department, 29.. one test each ``code^^^``).

Every message is validated strictly by hl7apy for the version sent (RSP_K11, OML_O33 in 2.5.1; QCK_Q02,
DSR_Q03 in the query's version). Two documented Mindray deviations in DSR^Q03 are applied after validation:
the analyser's QRD/QRF are echoed verbatim (they are not valid v2.3.1 themselves) and DSP-3 test lines carry
``^`` although DSP-3 is TX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from hl7apy.core import Message as ApyMessage

from drivers.hl7.acks import MshInfo, msh_info
from drivers.hl7.builder import (
    codec_for,
    finish,
    fold_to_ascii,
    needs_folding,
    new_message,
    reply_version,
    set_field,
)
from drivers.hl7.dtm import DEFAULT_TIMEZONE, format_dtm
from drivers.hl7.message import Delimiters, Segment, escape, parse_message


@dataclass(frozen=True, slots=True)
class OrderDescription:
    """One specimen's work order as the LIS tells an analyser (host query answer, LAB-28 push)."""

    specimen_id: str
    test_codes: tuple[str, ...] = field(default_factory=tuple)  # instrument test codes
    patient_id: str = ""
    patient_name: str = ""  # "Nông Thị Hoa": family first, given last (Vietnamese order)
    sex: str = ""  # HL7 table 0001: F M O U
    birth_date: date | None = None
    priority: str = "R"  # R routine, S stat (HL7 table 0485)
    specimen_type: str = ""  # HL7 table 0487 (SER, BLD, PLAS, UR) for OML; Mindray text ("serum") for DSR
    collected_at: datetime | None = None
    placer_order_number: str = ""  # defaults to the specimen id


def split_name(name: str) -> tuple[str, str, str]:
    """(family, given, middle) for XPN.1 / XPN.2 / XPN.3: "Nông Thị Hoa" -> ("Nông", "Hoa", "Thị")."""
    words = name.split()
    if not words:
        return "", "", ""
    if len(words) == 1:
        return words[0], "", ""
    return words[0], words[-1], " ".join(words[1:-1])


def _xpn(name: str) -> str:
    family, given, middle = (escape(p) for p in split_name(name))
    return "^".join([family, given, middle]).rstrip("^")


def _query(raw: bytes, encoding: str | None) -> tuple[MshInfo, dict[str, Segment]]:
    """The query's MSH and its first segment of each name; raises ParseError for non-HL7 input."""
    parsed = parse_message(raw, encoding)
    return msh_info(parsed), {s.name: s for s in reversed(parsed.segments())}


def build_rsp_k11(
    query: bytes,
    found: bool,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    sending_application: str = "LIS",
    encoding: str | None = None,
) -> bytes:
    """IHE LAW LAB-27 answer to a ``QBP^Q11``: ``RSP^K11^RSP_K11`` (HL7 v2.5.1), QAK-2 OK or NF."""
    info, segs = _query(query, encoding)
    qpd = segs.get("QPD")
    version = reply_version(info.version)
    if version in ("2.2", "2.3", "2.3.1"):
        version = "2.5.1"  # RSP^K11 exists from HL7 v2.4 on
    msg = _answer_message("RSP_K11", version, "RSP^K11^RSP_K11", info, control_id, now, sending_application)
    msg.msa.msa_1 = "AA"
    msg.msa.msa_2 = escape(info.control_id)
    qak = msg.qak
    if qpd is not None:
        set_field(qak, "qak_1", qpd.field(2))
    qak.qak_2 = "OK" if found else "NF"
    if qpd is not None:
        set_field(qak, "qak_3", qpd.field(1))
        for n in range(1, min(len(qpd), 3) + 1):
            set_field(msg.qpd, f"qpd_{n}", qpd.field(n))
    else:
        msg.qpd.qpd_1 = "WOS^Work Order Step^IHE_LABTF"
    return finish(msg, codec_for(info.charset, info.codec))


def build_oml_o33(
    order: OrderDescription,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    sending: tuple[str, str] = ("LIS", ""),
    receiving: tuple[str, str] = ("", ""),
    charset: str = "UNICODE UTF-8",
    fold: bool = False,
    timezone_name: str = DEFAULT_TIMEZONE,
) -> bytes:
    """IHE LAW LAB-28 work order: ``OML^O33^OML_O33`` v2.5.1 with PID, SPM, SAC and ORC/TQ1/OBR per test."""
    if not order.test_codes:
        raise ValueError("an OML^O33 order needs at least one test code")
    text = fold_to_ascii if needs_folding(charset, fold) else _same
    msg = new_message(
        "OML_O33",
        "2.5.1",
        "OML^O33^OML_O33",
        control_id=control_id,
        now=now,
        sending=sending,
        receiving=(escape(receiving[0]), escape(receiving[1])),
        charset=charset,
        timezone_name=timezone_name,
    )
    msg.msh.msh_15 = "AL"  # IHE LAW: accept acknowledgement always
    msg.msh.msh_16 = "NE"
    msg.msh.msh_21 = "LAB-28^IHE"
    pid = msg.add_group("OML_O33_PATIENT").add_segment("PID")
    pid.pid_1 = "1"
    pid.pid_3 = escape(order.patient_id or order.specimen_id)
    pid.pid_5 = _xpn(text(order.patient_name)) or "UNKNOWN"
    if order.birth_date:
        pid.pid_7 = order.birth_date.strftime("%Y%m%d")
    if order.sex:
        pid.pid_8 = order.sex
    spec_group = msg.add_group("OML_O33_SPECIMEN")
    spm = spec_group.add_segment("SPM")
    spm.spm_1 = "1"
    spm.spm_2 = f"{escape(order.specimen_id)}&LIS"
    spm.spm_4 = escape(order.specimen_type or "SER")
    spm.spm_11 = "P"  # HL7 table 0369: patient specimen
    if order.collected_at:
        spm.spm_17 = format_dtm(order.collected_at, timezone_name)
    sac = spec_group.add_segment("SAC")
    sac.sac_3 = escape(order.specimen_id)
    placer = escape(order.placer_order_number or order.specimen_id)
    for k, code in enumerate(order.test_codes, start=1):
        group = spec_group.add_group("OML_O33_ORDER")
        orc = group.add_segment("ORC")
        orc.orc_1 = "NW"
        orc.orc_2 = f"{placer}-{k}^LIS"
        tq1 = group.add_group("OML_O33_TIMING").add_segment("TQ1")
        tq1.tq1_1 = "1"
        tq1.tq1_9 = "S" if order.priority.upper() in ("S", "STAT") else "R"
        obr = group.add_group("OML_O33_OBSERVATION_REQUEST").add_segment("OBR")
        obr.obr_1 = str(k)
        obr.obr_2 = f"{placer}-{k}^LIS"
        obr.obr_4 = f"{escape(code)}^^99LIS"
    return finish(msg, codec_for(charset))


def build_qck_q02(
    query: bytes,
    found: bool,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    sending_application: str = "LIS",
    encoding: str | None = None,
) -> bytes:
    """Mindray answer to ``QRY^Q02``: ``QCK^Q02`` with MSA AA and QAK-2 ``OK`` (orders follow) or ``NF``."""
    info, _ = _query(query, encoding)
    version = reply_version(info.version)
    msg = _answer_message("QCK_Q02", version, _type("QCK^Q02", version), info, control_id, now, sending_application)
    msg.msa.msa_1 = "AA"
    msg.msa.msa_2 = escape(info.control_id)
    msg.msa.msa_3 = "Message accepted"
    msg.add_segment("ERR").err_1 = "0"
    qak = msg.add_segment("QAK")
    qak.qak_1 = "SR"
    qak.qak_2 = "OK" if found else "NF"
    return finish(msg, codec_for(info.charset, info.codec))


def build_dsr_q03(
    query: bytes,
    order: OrderDescription,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    sending_application: str = "LIS",
    encoding: str | None = None,
    fold: bool = False,
    timezone_name: str = DEFAULT_TIMEZONE,
) -> bytes:
    """Mindray order download ``DSR^Q03`` answering ``QRY^Q02``: QRD/QRF echoed, the order in DSP lines."""
    info, segs = _query(query, encoding)
    version = reply_version(info.version)
    msg = _answer_message("DSR_Q03", version, _type("DSR^Q03", version), info, control_id, now, sending_application)
    msg.msa.msa_1 = "AA"
    msg.msa.msa_2 = escape(info.control_id)
    msg.msa.msa_3 = "Message accepted"
    msg.add_segment("ERR").err_1 = "0"
    qak = msg.add_segment("QAK")
    qak.qak_1 = "SR"
    qak.qak_2 = "OK"
    _echo(msg, "QRD", segs.get("QRD"), required=(1, 2, 3, 4, 7, 8, 9, 10))
    _echo(msg, "QRF", segs.get("QRF"), required=(1,))
    text = fold_to_ascii if needs_folding(info.charset, fold) else _same
    lines = _dsp_lines(order, text, timezone_name)
    for k, line in enumerate(lines, start=1):
        if not line:  # DSP-3 is required: an empty item is left out, DSP-1 keeps the Mindray item number
            continue
        dsp = msg.add_segment("DSP")
        dsp.dsp_1 = str(k)
        dsp.dsp_3 = escape(line)  # TX: no components allowed, see _mindray_data_lines
    msg.add_segment("DSC")
    verbatim = _verbatim_echo(segs.get("QRD"), segs.get("QRF"))

    def post(er7: str) -> str:
        return _mindray_data_lines(verbatim(er7))

    return finish(msg, codec_for(info.charset, info.codec), post=post)


def _verbatim_echo(*sources: Segment | None) -> Callable[[str], str]:
    """Put the analyser's QRD/QRF back exactly as sent, after validation (HL7 v2.3.1 2.24.4: echoed).

    Mindray's own QRD is not valid v2.3.1 (QRD-7 ``RD`` is not a CQ, QRD-10 is empty though required), so the
    message is validated with a normalised copy and the original segments are written in its place. Only done
    when the analyser uses the standard delimiters, else the normalised copy is sent.
    """
    originals = {s.name: s.raw for s in sources if s is not None and s.delimiters == Delimiters()}

    def swap(er7: str) -> str:
        return "\r".join(originals.get(seg[:3], seg) if seg[:3] in ("QRD", "QRF") else seg for seg in er7.split("\r"))

    return swap


def _mindray_data_lines(er7: str) -> str:
    """Mindray reads DSP-3 test lines as ``code^^^`` although DSP-3 is TX (no components) in HL7 v2.3.1.

    The message is validated with the component separators escaped (``\\S\\``); this puts them back in the
    DSP segments only, after validation. Test codes themselves never contain ``^`` (profile codes).
    """
    return "\r".join(seg.replace("\\S\\", "^") if seg.startswith("DSP|") else seg for seg in er7.split("\r"))


def _dsp_lines(order: OrderDescription, fold: Callable[[str], str], timezone_name: str) -> list[str]:
    lines = [""] * 28
    lines[0] = order.patient_id
    lines[2] = fold(order.patient_name)
    lines[3] = order.birth_date.strftime("%Y%m%d000000") if order.birth_date else ""
    lines[4] = order.sex
    lines[20] = order.specimen_id
    lines[22] = format_dtm(order.collected_at, timezone_name)[:14] if order.collected_at else ""
    lines[23] = "Y" if order.priority.upper() in ("S", "STAT") else "N"
    lines[25] = order.specimen_type or "serum"
    lines += [f"{code.replace('^', '')}^^^" for code in order.test_codes]
    return lines


def _same(text: str) -> str:
    return text


def _type(code: str, version: str) -> str:
    return code if version in ("2.1", "2.2", "2.3") else f"{code}^{code.replace('^', '_')}"


def _answer_message(
    structure: str,
    version: str,
    message_type: str,
    info: MshInfo,
    control_id: str | None,
    now: datetime | None,
    sending_application: str,
) -> ApyMessage:
    msg = new_message(
        structure,
        version,
        message_type,
        control_id=control_id,
        now=now or datetime.now(UTC),
        sending=(sending_application, ""),
        receiving=("", ""),
        processing_id=info.processing_id,
        charset=info.charset,
    )
    set_field(msg.msh, "msh_5", info.sending_application)
    set_field(msg.msh, "msh_6", info.sending_facility)
    return msg


def _echo(msg: ApyMessage, name: str, source: Segment | None, required: Sequence[int]) -> None:
    """Copy ``source`` field by field into ``msg`` (query echo, HL7 v2.3.1 2.24.4 / 2.24.5).

    This is the normalised copy that hl7apy validates: a field strict hl7apy refuses is normalised or dropped
    (Mindray QRD-7 ``RD`` -> CQ ``^RD``), a required composite left empty (Mindray QRD-10) is set to an empty
    composite. What is sent is the original segment (:func:`_verbatim_echo`).
    """
    target = msg.qrd if name == "QRD" else msg.add_segment(name)
    if source is None:
        return
    lower = name.lower()
    for n in range(1, max(len(source), *required) + 1):
        raw = source.field(n)
        if not raw:
            if n in required:
                set_field(target, f"{lower}_{n}", "^")
            continue
        if not set_field(target, f"{lower}_{n}", raw) and n in required and "^" not in raw:
            set_field(target, f"{lower}_{n}", f"^{raw}")
