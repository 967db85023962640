"""One HL7 v2 connection over MLLP: journal, acknowledge, answer host queries, push orders.

Acknowledgement policy (HL7 v2.5.1 2.9.2 original mode; ARCHITECTURE.md principle 2):

* **AR** (reject, HL7 table 0008) without journaling as a message, the bytes kept in quarantine (error journal
  entry with the reason): no readable MSH (not HL7, wrong field separator), a message type the LIS does not
  take (ERR code 200), text that is not valid in the declared character set, a block over the size limit.
* **AA** only after the raw message is committed (group commit). Results are then processed in the background,
  in order per instrument.
* **AE** (ERR code 204) for an unknown specimen when the profile says ``accept_unknown_specimen = "AE"``: after
  the journal commit the specimen ids of the parsed message are looked up (one read, not the whole processing,
  so a processing backlog never delays an ACK); the results are stored as unmatched either way. Profiles with
  ``"AA"`` (the default) answer AA right after the commit.
* If the journal commit fails the LIS answers AE (code 207): nothing was kept, so the analyser must resend.

Host queries: IHE LAW ``QBP^Q11`` -> ``RSP^K11`` (QAK OK/NF), then one LAB-28 ``OML^O33`` per specimen on the
same connection (the analyser answers ``ORL^O34`` / ``ACK``); Mindray ``QRY^Q02`` -> ``QCK^Q02``, then one
``DSR^Q03`` per specimen. The query itself is journaled (status ``query``) and every answer is journaled
as an outgoing message.

ACKs mirror the sender (version, MSH-18, MSA-2 = MSH-10). Building one with hl7apy costs ~3 ms, so
:class:`AckTemplates` builds and validates each distinct MSH shape once and substitutes the control ids and the
timestamp afterwards (byte-for-byte what hl7apy produced).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from itertools import count

from drivers.hl7.acks import AckCode, AckError, MshInfo, build_ack, fallback_ack, read_msh
from drivers.hl7.builder import codec_for, new_control_id
from drivers.hl7.dtm import format_dtm
from drivers.hl7.message import ParseError, escape, parse_message
from drivers.hl7.mllp import BlockAborted, BlockReceived, BlockTooLarge, MllpDecoder, encode_block
from drivers.hl7.replies import build_dsr_q03, build_oml_o33, build_qck_q02, build_rsp_k11
from drivers.hl7.report import parse_hl7
from drivers.host_orders import hl7_order, lookup
from drivers.transports.instrument import InstrumentChannel
from drivers.transports.session_loop import SessionLoop
from drivers.transports.stream import ByteStream
from lis.instrument_report import InstrumentReport, MessageKind, MessageParseError
from lis.services.host_query import PendingSpecimen, unknown_specimens
from lis.services.ingest import nul_byte_error
from lis.services.spool import SpoolEntry

log = logging.getLogger(__name__)

SUPPORTED = frozenset({("ORU", "R01"), ("OUL", "R22"), ("OUL", "R23"), ("OUL", "R24"), ("QBP", "Q11"),
                       ("QRY", "Q02")})
REPLIES = frozenset({"ACK", "ORL"})
_FIXED = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
_IN, _OUT = "Qz7InSentinel", "Qz7OutSentinel"
_ids = count(1)


class AckTemplates:
    """AA acknowledgements from validated templates, one per distinct incoming MSH shape."""

    def __init__(self, sending_application: str = "LIS") -> None:
        self._app = sending_application
        self._cache: dict[MshInfo, tuple[bytes, str, bytes]] = {}

    @property
    def size(self) -> int:
        """How many distinct sender shapes have a template."""
        return len(self._cache)

    def ack(self, info: MshInfo, code: AckCode = "AA", text: str = "", error: AckError | None = None) -> bytes:
        if code != "AA" or text or error is not None:
            return build_ack(info, code, text, error, sending_application=self._app)
        key = replace(info, control_id="")
        entry = self._cache.get(key)
        if entry is None:
            template = build_ack(replace(info, control_id=_IN), "AA", control_id=_OUT, now=_FIXED,
                                 sending_application=self._app)
            codec = codec_for(info.charset, info.codec)
            stamp = format_dtm(_FIXED).encode(codec)
            if template.count(stamp) != 1 or template.count(_IN.encode()) != 1 or len(self._cache) > 256:
                return build_ack(info, "AA", sending_application=self._app)
            entry = (template.replace(stamp, b"\x00T\x00"), codec, stamp)
            self._cache[key] = entry
        template, codec, _ = entry
        return (template.replace(b"\x00T\x00", format_dtm(datetime.now(UTC)).encode(codec))
                .replace(_IN.encode(), escape(info.control_id).encode(codec))
                .replace(_OUT.encode(), new_control_id().encode(codec)))


class Hl7Session(SessionLoop):
    """LIS side of one MLLP connection (see the module docstring for the rules)."""

    def __init__(self, channel: InstrumentChannel, stream: ByteStream, *, idle_timeout: float | None = None,
                 reply_timeout: float = 10.0) -> None:
        super().__init__(stream)
        self.channel = channel
        if idle_timeout is None:  # profile extra.idle_timeout; 30 s by default
            idle_timeout = float(channel.profile.extra.get("idle_timeout", 30.0))
        self.decoder = MllpDecoder(max_block_size=channel.config.max_message_bytes, idle_timeout=idle_timeout)
        self.acks = AckTemplates()
        self.reply_timeout = reply_timeout
        self._replies: dict[str, asyncio.Future[bytes]] = {}

    async def run(self) -> None:
        self.channel.sessions.append(self)
        try:
            await super().run()
        finally:
            self.channel.sessions.remove(self)

    def next_deadline(self) -> float | None:
        return self.decoder.deadline()

    async def on_timer(self, now: float) -> None:
        await self._events(self.decoder.check_timeout(now))

    async def on_data(self, data: bytes, now: float) -> None:
        await self._events(self.decoder.receive(data, now))

    async def on_close(self, now: float) -> None:
        if self.decoder.in_block:
            log.info("instrument %s: connection closed inside an MLLP block; partial block dropped", self.channel.name)
        for future in self._replies.values():
            if not future.done():
                future.cancel()

    async def _events(self, events: list[object]) -> None:
        ch = self.channel
        for event in events:
            if isinstance(event, BlockReceived):
                await self._block(event.data)
            elif isinstance(event, BlockTooLarge):
                reason = f"MLLP block larger than {event.limit} bytes refused"
                log.warning("instrument %s: %s", ch.name, reason)
                ch.status.error(ch.name, reason)
                self.spawn(self._quarantine(b"", reason))
                self._write(fallback_ack(reason, code="AR"))
            elif isinstance(event, BlockAborted):
                log.info("instrument %s: MLLP block of %d bytes abandoned: %s", ch.name, event.size, event.reason)
                ch.status.error(ch.name, f"block abandoned: {event.reason}")

    def _write(self, message: bytes) -> None:
        self.stream.write(encode_block(message))

    async def _quarantine(self, raw: bytes, reason: str) -> None:
        await self.channel.quarantine(raw, reason, self.stream.peer)

    async def _reject(self, raw: bytes, reason: str, info: MshInfo | None, code: int = 100) -> None:
        """AR with the reason, the bytes kept in quarantine first."""
        ch = self.channel
        log.info("instrument %s: message %s rejected (AR): %s", ch.name, info.control_id[:20] if info else "?", reason)
        ch.status.error(ch.name, reason)
        await self._quarantine(raw, reason)
        if info is None:
            self._write(fallback_ack(reason, code="AR"))
        else:
            self._write(self._safe_ack(raw, info, "AR", reason, AckError(code=code, diagnostic=reason)))

    def _safe_ack(self, raw: bytes, info: MshInfo, code: AckCode, text: str = "",
                  error: AckError | None = None) -> bytes:
        try:
            return self.acks.ack(info, code, text, error)
        except Exception as exc:  # an MSH hl7apy cannot mirror: hand-written ACK echoing MSA-2
            log.info("instrument %s: ACK built by hand: %s", self.channel.name, exc)
            return fallback_ack(text or "accepted", code=code, acknowledged_id=info.control_id)

    async def _block(self, raw: bytes) -> None:
        ch = self.channel
        try:
            info = read_msh(raw, ch.encoding)
        except ParseError as exc:
            await self._reject(raw, f"not an HL7 v2 message: {exc}", None)
            return
        kind = (info.message_code, info.trigger)
        if info.message_code in REPLIES:
            self._reply_received(raw, info)
            return
        if kind not in SUPPORTED:
            await self._reject(raw, f"unsupported message type {info.message_code}^{info.trigger}", info, 200)
            return
        try:
            report = parse_hl7(raw, ch.profile, ch.config.encoding)
        except MessageParseError as exc:
            await self._reject(raw, str(exc), info, 100)
            return
        bad_text = nul_byte_error(raw) or next((w for w in report.warnings if w.startswith("text is not valid")), None)
        if bad_text:
            await self._reject(raw, bad_text, info, 102)
            return
        try:
            entry = await ch.journal_in(raw, self.stream.peer)
        except Exception as exc:
            log.error("instrument %s: journal commit failed, AE sent: %s", ch.name, exc)
            ch.status.error(ch.name, f"journal commit failed: {exc}")
            self._write(self._safe_ack(raw, info, "AE", "message not stored, send again",
                                       AckError(code=207, diagnostic="journal commit failed")))
            return
        ch.status.message(ch.name)
        if report.kind == MessageKind.QUERY:
            try:
                await self._query(raw, entry, info, report)
            except Exception as exc:  # an answer hl7apy cannot build from this query: say so, keep serving
                log.exception("instrument %s: host query (spool entry %d) could not be answered", ch.name,
                              entry.id)
                ch.status.error(ch.name, f"host query not answered: {exc}")
                self._write(self._safe_ack(raw, info, "AE", "query could not be answered",
                                           AckError(code=207, diagnostic=str(exc)[:200])))
            return
        if ch.profile.accept_unknown_specimen == "AE" and report.kind == MessageKind.RESULTS:
            ids = [s.specimen_id for s in report.specimens if not s.is_qc]
            unknown = await asyncio.to_thread(_unknown, ch, ids)
            ch.processor.submit(entry)  # stored either way (unknown specimen -> unmatched queue)
            if unknown:
                text = f"unknown specimen {unknown[0]}"
                log.info("instrument %s: message journaled (spool entry %d), acknowledged AE: unknown specimen",
                         ch.name, entry.id)
                self._write(self._safe_ack(raw, info, "AE", text, AckError(code=204, diagnostic=text)))
                return
            self._write(self._safe_ack(raw, info, "AA"))
            log.info("instrument %s: message journaled (spool entry %d) and acknowledged AA", ch.name, entry.id)
            return
        self._write(self._safe_ack(raw, info, "AA"))
        log.info("instrument %s: message journaled (spool entry %d) and acknowledged AA", ch.name, entry.id)
        ch.processor.submit(entry)

    # -- host queries and order download ----------------------------------------------------------
    async def _query(self, raw: bytes, entry: SpoolEntry, info: MshInfo, report: InstrumentReport) -> None:
        """Answer from the parsed query at once (not behind the processing backlog); process it in order."""
        ch = self.channel
        ch.processor.submit(entry)
        specimens: list[PendingSpecimen] = []
        if ch.profile.host_query:
            for query in report.queries:
                answer = await lookup(ch.db, ch.name, ch.profile, query.specimen_ids, all_pending=query.all_pending)
                specimens += answer.found
        found = bool(specimens)
        log.info("instrument %s: host query (spool entry %d, %s): %d specimen(s) with orders", ch.name, entry.id,
                 info.message_code, len(specimens))
        if info.message_code == "QBP":
            self._send_out(build_rsp_k11(raw, found, encoding=ch.encoding))
            if found:
                self.spawn(self._push_oml(specimens))
        else:
            self._send_out(build_qck_q02(raw, found, encoding=ch.encoding))
            for specimen in specimens:
                order = hl7_order(specimen, ch.profile)
                if order is not None:
                    self._send_out(build_dsr_q03(raw, order, encoding=ch.encoding, fold=ch.profile.fold_to_ascii))

    def _send_out(self, message: bytes) -> None:
        self._write(message)
        self.spawn(self._journal_out(message))

    async def _journal_out(self, message: bytes) -> None:
        await self.channel.journal_out(message, self.stream.peer)

    def _reply_received(self, raw: bytes, info: MshInfo) -> None:
        try:
            msa_2 = _msa_2(raw, self.channel.encoding)
        except ParseError:
            msa_2 = ""
        future = self._replies.pop(msa_2, None)
        if future is not None and not future.done():
            future.set_result(raw)
        log.info("instrument %s: %s received for message %s", self.channel.name, info.message_code, msa_2[:20])

    async def _push_oml(self, specimens: list[PendingSpecimen]) -> int:
        """IHE LAW LAB-28: one ``OML^O33`` per specimen, each waiting for the analyser's ORL^O34 / ACK."""
        ch = self.channel
        sent = 0
        for specimen in specimens:
            order = hl7_order(specimen, ch.profile)
            if order is None:
                continue
            control_id = new_control_id()
            message = build_oml_o33(order, control_id=control_id, fold=ch.profile.fold_to_ascii)
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._replies[control_id] = future
            self.post(lambda m=message: self._post_write(m))
            self.spawn(self._journal_out(message))
            try:
                reply = await asyncio.wait_for(future, self.reply_timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._replies.pop(control_id, None)
                log.warning("instrument %s: no reply to order message %s", ch.name, control_id)
                continue
            if b"MSA|AA" in reply or b"MSA|CA" in reply:
                sent += 1
        return sent

    async def _post_write(self, message: bytes) -> None:
        self._write(message)

    async def push(self, specimens: list[PendingSpecimen]) -> int:
        """Push mode (IHE LAW LAB-28): send ``OML^O33`` orders; returns how many the analyser accepted."""
        return await self._push_oml(specimens)


def _msa_2(raw: bytes, encoding: str) -> str:
    msg = parse_message(raw, encoding)
    msa = next((s for s in msg.segments() if s.name == "MSA"), None)
    return msa.value(2) if msa is not None else ""


def _unknown(channel: InstrumentChannel, ids: list[str]) -> list[str]:
    with channel.db.read() as session:
        return unknown_specimens(session, ids)
