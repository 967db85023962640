"""One ASTM connection (TCP or serial line) driven through :class:`~drivers.astm.link.AstmLink`.

Rules applied here, on top of the sans-IO link layer:

* LIS1-A / ARCHITECTURE.md principle 2, journal before the ACK of the last frame: on
  :class:`MessageReceived` the raw bytes are committed (group commit, :mod:`drivers.transports.journal`)
  and only then :meth:`AstmLink.acknowledge` releases the ACK; if the commit fails :meth:`AstmLink.reject`
  NAKs the frame and the analyser retransmits it.
* Processing (parse, match, store) runs after the ACK, in order per instrument.
* LIS2-A2 host query: when a message holds a Q record and the profile says the analyser queries, the LIS
  answers right after the ACK (not behind the processing backlog): it becomes the sender of H, P, O..., L
  for the pending orders of the queried specimens (:func:`drivers.astm.orders.build_order_message`) or the
  "no information" answer (:func:`drivers.astm.orders.build_no_order_message`) for unknown ones.
* Transfers that end without a complete message (EOT or ENQ mid-message, receiver timeout, connection
  lost) are kept in the journal as error entries (the quarantine) with the reason; the link keeps serving.
* Push mode: :meth:`AstmSession.push` downloads orders (O-26 = ``O``) for specimens the LIS chooses.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace
from datetime import datetime
from itertools import count

from drivers.astm.delimiters import RecordError
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
from drivers.astm.orders import OrderDescription as AstmOrder
from drivers.astm.orders import build_no_order_message, build_order_message
from drivers.astm.report import parse_astm
from drivers.host_orders import astm_order, lookup
from drivers.profile import Profile
from drivers.transports.instrument import InstrumentChannel
from drivers.transports.session_loop import SessionLoop
from drivers.transports.stream import ByteStream
from lis.instrument_report import MessageKind, MessageParseError
from lis.services.host_query import PendingSpecimen

log = logging.getLogger(__name__)
_ids = count(1)
_QUERY_RECORD = re.compile(rb"(?:^|[\r\n])[Qq]\|")


def make_link(channel: InstrumentChannel) -> AstmLink:
    """An :class:`AstmLink` with the profile's frame sizes (LIS1-A: 240 text bytes per frame by default) and
    timers (``extra.receive_timeout``, LIS1-A 30 s; ``extra.reply_timeout``, LIS1-A 15 s)."""
    profile = channel.profile
    max_frame = max(profile.max_frame_size, 64)
    return AstmLink(frame_size=profile.frame_size, max_frame_size=min(max_frame, channel.config.max_message_bytes),
                    require_terminator=bool(profile.extra.get("require_terminator", True)),
                    receive_timeout=float(profile.extra.get("receive_timeout", 30.0)),
                    reply_timeout=float(profile.extra.get("reply_timeout", 15.0)))


class AstmSession(SessionLoop):
    """LIS side of one ASTM line (receiver of results, sender of host-query answers and order pushes)."""

    def __init__(self, channel: InstrumentChannel, stream: ByteStream) -> None:
        super().__init__(stream)
        self.channel = channel
        self.link = make_link(channel)
        self._max_message = channel.config.max_message_bytes
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._rx_bytes = 0  # bytes read since the last message boundary

    async def run(self) -> None:
        self.channel.sessions.append(self)
        try:
            await super().run()
        finally:
            self.channel.sessions.remove(self)

    # -- the loop hooks ---------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self.link.next_deadline()

    async def on_data(self, data: bytes, now: float) -> None:
        self._rx_bytes += len(data)
        if self._rx_bytes > self._max_message and self.link.state is LinkState.RECEIVING:
            # size limit on everything read: a transfer that never ends is cut, kept in quarantine, not ACKed
            self._rx_bytes = 0
            reason = f"transfer exceeds max_message_bytes {self._max_message}"
            events = self.link.reset(now, reason)
            if not any(isinstance(e, TransferAborted) for e in events):
                log.info("instrument %s: ASTM transfer cut: %s", self.channel.name, reason)
                self.channel.status.error(self.channel.name, reason)
            await self._handle(events)
            return
        await self._handle(self.link.receive(data, now))

    async def on_timer(self, now: float) -> None:
        await self._handle(self.link.poll(now))

    async def on_close(self, now: float) -> None:
        await self._handle(self.link.reset(now, "connection lost"))
        for future in self._waiting.values():
            if not future.done():
                future.set_result(False)

    # -- events -----------------------------------------------------------------------------------
    async def _handle(self, events: list[Event]) -> None:
        name = self.channel.name
        for event in events:
            if isinstance(event, Transmit):
                self.stream.write(event.data)
                continue
            if isinstance(event, MessageReceived | TransferAborted | TransferEnded):
                self._rx_bytes = 0
            if isinstance(event, MessageReceived):
                await self._received(event)
            elif isinstance(event, TransferAborted):
                log.info("instrument %s: ASTM transfer aborted: %s", name, event.reason)
                self.channel.status.error(name, event.reason)
                if event.raw:
                    self.spawn(self._quarantine(event.raw, event.reason))
            elif isinstance(event, FrameRejected):
                log.info("instrument %s: frame rejected: %s", name, event.reason)
                self.channel.status.error(name, f"frame rejected: {event.reason}")
            elif isinstance(event, MessageSent):
                log.info("instrument %s: message %s sent and acknowledged", name, event.message_id)
                self._resolve(event.message_id, True)
            elif isinstance(event, SendFailed):
                log.warning("instrument %s: sending message %s failed: %s", name, event.message_id, event.reason)
                self.channel.status.error(name, f"send failed: {event.reason}")
                self._resolve(event.message_id, False)
            elif isinstance(event, SendDeferred):
                log.info("instrument %s: message %s deferred: %s", name, event.message_id, event.reason)

    async def _received(self, event: MessageReceived) -> None:
        """LIS1-A: journal before the ACK of the last frame (reject -> NAK if the commit fails)."""
        ch = self.channel
        if len(event.raw) > self._max_message:
            reason = f"message of {len(event.raw)} bytes exceeds max_message_bytes {self._max_message}"
            await self._quarantine(event.raw, reason)  # kept (error entry) before the ACK, never stored as results
            await self._handle(self.link.acknowledge(_now()) if not event.acknowledged else [])
            return
        try:
            entry = await ch.journal_in(event.raw, self.stream.peer)
        except Exception as exc:
            log.error("instrument %s: journal commit failed, frame NAKed: %s", ch.name, exc)
            ch.status.error(ch.name, f"journal commit failed: {exc}")
            if not event.acknowledged:
                await self._handle(self.link.reject(_now()))
            return
        if not event.acknowledged:
            await self._handle(self.link.acknowledge(_now()))
        ch.status.message(ch.name)
        log.info("instrument %s: message journaled (spool entry %d) and acknowledged", ch.name, entry.id)
        ch.processor.submit(entry)
        if _QUERY_RECORD.search(event.records_text):
            # answer at once from the message itself: a backlog of results processing must not make the
            # analyser time out waiting for its orders (the journal entry is processed in order as usual)
            self.spawn(self._answer_query(entry.id, event.records_text))

    async def _quarantine(self, raw: bytes, reason: str) -> None:
        await self.channel.quarantine(raw, reason, self.stream.peer)

    # -- host query -------------------------------------------------------------------------------
    async def _answer_query(self, spool_id: int, records_text: bytes) -> None:
        """LIS2-A2 host query: answer as sender with H, P, O..., L (orders) or the "no information" message."""
        ch = self.channel
        try:
            report = parse_astm(records_text, ch.profile, ch.config.encoding)
        except MessageParseError as exc:
            log.info("instrument %s: query (spool entry %d) not understood: %s", ch.name, spool_id, exc)
            return
        if report.kind != MessageKind.QUERY:
            return
        if not ch.profile.host_query:
            log.info("instrument %s: host query (spool entry %d) ignored (profile %s has host_query = false)",
                     ch.name, spool_id, ch.profile.name)
            return
        for query in report.queries:
            answer = await lookup(ch.db, ch.name, ch.profile, query.specimen_ids, all_pending=query.all_pending)
            log.info("instrument %s: host query (spool entry %d): %d specimen(s) with orders, %d without", ch.name,
                     spool_id, len(answer.found), len(answer.no_order))
            now = datetime.now()
            messages: list[bytes] = []
            orders = [o for o in (astm_order(s, ch.profile) for s in answer.found) if o is not None]
            if orders:
                messages.append(_order_message(orders, ch.profile, now, in_reply_to_query=True))
            if answer.no_order or not orders:
                ids = answer.no_order or query.specimen_ids or ["ALL"]
                messages.append(build_no_order_message(ids, ch.profile, now=now))
            for message in messages:
                self._send(message, f"Q{spool_id}-{next(_ids)}")

    def _send(self, records: bytes, message_id: str) -> asyncio.Future[bool]:
        """Queue ``records`` for sending through the session loop; the future says whether it was ACKed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future

        async def command() -> None:
            await self._handle(self.link.send_message(records, _now(), message_id=message_id))

        self.post(command)
        self.spawn(self._journal_out(records))
        return future

    async def _journal_out(self, records: bytes) -> None:
        await self.channel.journal_out(records, self.stream.peer)

    def _resolve(self, message_id: str, ok: bool) -> None:
        future = self._waiting.pop(message_id, None)
        if future is not None and not future.done():
            future.set_result(ok)

    async def push(self, specimens: list[PendingSpecimen]) -> int:
        """Push mode: download orders (LIS2-A2 O-26 = O) for ``specimens``; returns how many were ACKed."""
        orders = [o for o in (astm_order(s, self.channel.profile) for s in specimens) if o is not None]
        if not orders:
            return 0
        message = _order_message(orders, self.channel.profile, datetime.now(), in_reply_to_query=False)
        ok = await self._send(message, f"P{next(_ids)}")
        return len(orders) if ok else 0


def _order_message(orders: list[AstmOrder], profile: Profile, now: datetime, *, in_reply_to_query: bool) -> bytes:
    """The order download; names the profile encoding cannot carry (Vietnamese in latin-1) are folded to ASCII."""
    try:
        return build_order_message(orders, profile, now=now, in_reply_to_query=in_reply_to_query)
    except RecordError:
        folded = replace(profile, fold_to_ascii=True)
        return build_order_message(orders, folded, now=now, in_reply_to_query=in_reply_to_query)


def _now() -> float:
    return time.monotonic()
