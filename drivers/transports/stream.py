"""The byte stream a link session talks to, whatever carries it (TCP socket, TLS, serial port).

A session (``drivers.astm.session``, ``drivers.hl7.session``) only needs to read chunks, write bytes and
close; the transports (:mod:`drivers.transports.tcp`, :mod:`drivers.transports.serial_port`) adapt their
medium to this protocol. Every read is bounded (``max_read``): nothing on the analyser side can make the
LIS buffer without limit in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lis.instrument_status import StatusBoard

DEFAULT_MAX_READ = 64 * 1024
log = logging.getLogger(__name__)


class ByteStream(Protocol):
    """A bidirectional byte stream to one analyser connection."""

    peer: str

    async def read(self) -> bytes:
        """The next chunk (at most the transport's read size); ``b""`` at end of stream."""
        ...

    def write(self, data: bytes) -> None:
        """Queue bytes for the line (never blocks the event loop)."""
        ...

    async def drain(self) -> None:
        """Wait until queued bytes are handed to the OS (flow control)."""
        ...

    async def close(self) -> None:
        """Close the connection; idempotent."""
        ...


StreamHandler = Callable[[ByteStream], Awaitable[None]]


async def run_session(handler: StreamHandler, stream: ByteStream, name: str, status: StatusBoard) -> None:
    """Run one link session on an open stream: a failing session is logged and counted on the instrument's
    status (the transport keeps serving), and the stream is always closed."""
    try:
        await handler(stream)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("instrument %s: session with %s failed", name, stream.peer)
        status.error(name, f"session failed: {type(exc).__name__}: {exc}")
    finally:
        await stream.close()


class AsyncioStream:
    """:class:`ByteStream` over an asyncio ``StreamReader``/``StreamWriter`` pair (TCP, optionally TLS)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_read: int = DEFAULT_MAX_READ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_read = max_read
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer or "")

    async def read(self) -> bytes:
        try:
            return await self._reader.read(self._max_read)
        except (ConnectionError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
