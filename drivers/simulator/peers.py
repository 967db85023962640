"""The analyser side of a connection, for the simulator and the tests.

* :class:`AstmPeerSession`: LIS1-A sender (and receiver of the LIS's order downloads) over one stream,
  built on the same :class:`~drivers.astm.link.AstmLink` with ``yield_on_contention=False`` (the instrument
  wins contention). :meth:`AstmPeerSession.send` resolves True when every frame was ACKed, False when the
  link gave up (6 attempts) or the connection dropped. Messages the LIS sends are ACKed at once and queued in
  :attr:`AstmPeerSession.received`.
* :class:`MllpPeerSession`: MLLP sender: writes a block and waits for the reply whose MSA-2 is the
  message's MSH-10; other messages from the LIS (DSR^Q03, OML^O33) are answered with an ACK AA and queued.
"""

from __future__ import annotations

import asyncio
import time
from itertools import count

from drivers.astm.link import AstmLink, Event, MessageReceived, MessageSent, SendFailed, Transmit
from drivers.hl7.acks import ack_for
from drivers.hl7.message import ParseError, parse_message
from drivers.hl7.mllp import BlockReceived, MllpDecoder, encode_block
from drivers.transports.session_loop import SessionLoop
from drivers.transports.stream import ByteStream

_ids = count(1)


class AstmPeerSession(SessionLoop):
    """Analyser side of one ASTM line (see module docstring)."""

    def __init__(self, stream: ByteStream, *, frame_size: int = 240, reply_timeout: float = 15.0) -> None:
        super().__init__(stream)
        self.link = AstmLink(frame_size=frame_size, reply_timeout=reply_timeout, yield_on_contention=False)
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[bool]] = {}

    def next_deadline(self) -> float | None:
        return self.link.next_deadline()

    async def on_data(self, data: bytes, now: float) -> None:
        self._handle(self.link.receive(data, now))

    async def on_timer(self, now: float) -> None:
        self._handle(self.link.poll(now))

    async def on_close(self, now: float) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_result(False)
        self._waiting.clear()

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Transmit):
                self.stream.write(event.data)
            elif isinstance(event, MessageReceived):
                self.received.put_nowait(event.records_text)
                if not event.acknowledged:
                    self._handle(self.link.acknowledge(time.monotonic()))
            elif isinstance(event, MessageSent | SendFailed):
                future = self._waiting.pop(event.message_id, None)
                if future is not None and not future.done():
                    future.set_result(isinstance(event, MessageSent))

    async def send(self, records: bytes) -> bool:
        """Send one message in its own transfer; True once the LIS ACKed its last frame."""
        if self.closed:
            return False
        message_id = f"m{next(_ids)}"
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future

        async def command() -> None:
            self._handle(self.link.send_message(records, time.monotonic(), message_id=message_id))

        self.post(command)
        return await future


class MllpPeerSession(SessionLoop):
    """Analyser side of one MLLP connection (see module docstring)."""

    def __init__(self, stream: ByteStream, *, max_block: int = 64 * 1024 * 1024) -> None:
        super().__init__(stream)
        self.decoder = MllpDecoder(max_block_size=max_block)
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._any: list[asyncio.Future[bytes]] = []

    def next_deadline(self) -> float | None:
        return self.decoder.deadline()

    async def on_timer(self, now: float) -> None:
        self.decoder.check_timeout(now)

    async def on_close(self, now: float) -> None:
        for future in [*self._waiting.values(), *self._any]:
            if not future.done():
                future.cancel()

    async def on_data(self, data: bytes, now: float) -> None:
        for event in self.decoder.receive(data, now):
            if isinstance(event, BlockReceived):
                self._block(event.data)

    def _block(self, raw: bytes) -> None:
        try:
            msg = parse_message(raw)
            code = msg.msh.value(9, 1)
            msa = msg.segment("MSA")
            acked = msa.value(2) if msa is not None else ""
        except ParseError:
            code, acked = "", ""
        if code in ("ACK", "RSP", "QCK", "ORL") or (acked and acked in self._waiting):
            future = self._waiting.pop(acked, None) or (self._any.pop(0) if self._any else None)
            if future is not None and not future.done():
                future.set_result(raw)
            return
        self.received.put_nowait(raw)  # an order download: acknowledge it (HL7 original mode)
        self.stream.write(encode_block(ack_for(raw, "AA", sending_application="SIM")))

    async def request(self, message: bytes, timeout: float) -> bytes:
        """Write ``message`` (one block) and wait for its reply; raises TimeoutError / CancelledError."""
        try:
            control_id = parse_message(message).msh.value(10)
        except ParseError:
            control_id = ""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if control_id:
            self._waiting[control_id] = future
        else:
            self._any.append(future)

        async def command() -> None:
            self.stream.write(encode_block(message))

        self.post(command)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            self._waiting.pop(control_id, None)
            if future in self._any:
                self._any.remove(future)

    async def write_raw(self, data: bytes) -> None:
        async def command() -> None:
            self.stream.write(data)

        self.post(command)
