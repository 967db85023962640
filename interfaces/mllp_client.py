"""MLLP client transport for ``ORU^R01`` delivery (HL7 v2.5.1 Appendix C.4 over TCP, optionally TLS).

One :class:`MllpTransport` per outbox lane keeps one connection open and sends one message at a time, waiting
for its ACK (original acknowledgement mode). A timeout closes the connection, so a late ACK is never taken
for the next message's; the message is then retried with the same MSH-10.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from interfaces.delivery import DeliveryOutcome
from interfaces.hl7_ack import MalformedAck, parse_ack
from interfaces.mllp import FrameTooLarge, MllpFramer, frame

log = logging.getLogger(__name__)


class MllpTransport:
    """Send an HL7 message, read the ACK, decide by MSA-1."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                 name: str = "") -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.name = name or f"{host}:{port}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = MllpFramer()

    async def _connect(self) -> DeliveryOutcome | None:
        if self._writer is not None and not self._writer.is_closing():
            return None
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl_context,
                                        server_hostname=self.host if self.ssl_context else None),
                timeout=self.timeout)
        except ssl.SSLError as exc:
            return DeliveryOutcome("retry", "TLS", f"TLS handshake with {self.name} failed: {exc.reason or exc}",
                                   destination_down=True)
        except TimeoutError:
            return DeliveryOutcome("retry", "TIMEOUT", f"connecting to {self.name} timed out after {self.timeout:g} s",
                                   destination_down=True)
        except OSError as exc:
            return DeliveryOutcome("retry", "CONNECT", f"cannot connect to {self.name}: {exc.strerror or exc}",
                                   destination_down=True)
        self._framer = MllpFramer()
        return None

    async def send(self, payload: bytes, message_id: str) -> DeliveryOutcome:
        failed = await self._connect()
        if failed is not None:
            return failed
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(frame(payload))
            await asyncio.wait_for(self._writer.drain(), timeout=self.timeout)
            raw = await asyncio.wait_for(self._read_block(), timeout=self.timeout)
        except TimeoutError:
            await self.close()
            return DeliveryOutcome("retry", "TIMEOUT", f"no ACK from {self.name} within {self.timeout:g} s")
        except (OSError, EOFError, FrameTooLarge) as exc:
            await self.close()
            return DeliveryOutcome("retry", "CONNECTION", f"connection to {self.name} lost before the ACK: {exc}")
        try:
            ack = parse_ack(raw, message_id)
        except MalformedAck as exc:
            await self.close()
            return DeliveryOutcome("retry", "MALFORMED", f"malformed ACK from {self.name}: {exc}")
        if ack.accepted:
            return DeliveryOutcome("delivered", ack.code)
        return DeliveryOutcome("rejected", ack.code, ack.text or f"{ack.code} without a reason")

    async def _read_block(self) -> bytes:
        assert self._reader is not None
        while True:
            data = await self._reader.read(65536)
            if not data:
                raise EOFError("closed by the peer")
            blocks = self._framer.feed(data)
            if blocks:
                return blocks[0]

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), timeout=1)
