"""MLLP listener for orders and demographics from the EMR (HL7 v2.5.1 Appendix C.4 over TCP; asyncio server).

Each block is processed in a worker thread (database commit first), then acknowledged on the same connection
(STANDARDS.md: acknowledge every message, after the commit). Oversized blocks close the connection.
"""

from __future__ import annotations

import asyncio
import logging

from interfaces.mllp import FrameTooLarge, MllpFramer, frame
from interfaces.orders_in import InboundHandler

log = logging.getLogger(__name__)


class MllpOrderListener:
    """Runtime component: listens on ``host:port`` for OML^O21, ORM^O01 and ADT^A01/A04/A08."""

    def __init__(self, handler: InboundHandler, host: str, port: int, *, max_size: int = 4 * 1024 * 1024,
                 idle_timeout: float = 300.0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.max_size = max_size
        self.idle_timeout = idle_timeout
        self.name = f"EMR order listener {handler.source} ({host}:{port})"
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        framer = MllpFramer(self.max_size)
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), timeout=self.idle_timeout)
                if not data:
                    break
                for block in framer.feed(data):
                    ack, result = await asyncio.to_thread(self.handler.handle, block)
                    writer.write(frame(ack))
                    await writer.drain()
                    log.info("EMR %s (%s): %s %s", self.handler.source, peer, result.ack_code, result.status)
        except FrameTooLarge as exc:
            log.warning("EMR %s (%s): %s; closing", self.handler.source, peer, exc)
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
