"""TCP transports: the LIS listens (analyser connects) or connects out (analyser listens), optional TLS.

* :class:`TcpServer`: one listener, any number of simultaneous connections, one session (one link state
  machine) per connection (LIS1-A over TCP: each connection is its own line; MLLP: each connection its own
  block stream, HL7 v2.5.1 Appendix C.4).
* :class:`TcpClient`: connects to the analyser and reconnects after any loss with exponential backoff
  (``initial_backoff`` doubling up to ``max_backoff``), so a rebooted analyser is picked up again.

Connection status goes to the :class:`lis.instrument_status.StatusBoard` (``listening``, ``connected``,
``connecting``, ``disconnected``, ``error``); nothing patient-related is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from drivers.transports.stream import DEFAULT_MAX_READ, AsyncioStream, StreamHandler, run_session
from lis.instrument_status import StatusBoard

log = logging.getLogger(__name__)


def tls_context(*, server: bool, cert: str = "", key: str = "", ca: str = "",
                verify_peer: bool = True) -> ssl.SSLContext:
    """TLS for MLLP (HL7 v2 over TLS, as IHE ATNA secure node transport): TLS 1.2 or later.

    Server side: ``cert``/``key`` are the LIS's certificate; with ``ca`` the analyser must present a client
    certificate signed by it (mutual TLS). Client side: ``ca`` verifies the analyser's certificate (system
    store when empty); ``cert``/``key`` are the LIS's client certificate if the analyser asks for one.
    """
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    context = ssl.create_default_context(purpose, cafile=ca or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(cert, key or None)
    if server:
        context.verify_mode = ssl.CERT_REQUIRED if ca else ssl.CERT_NONE
    elif not verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class TcpServer:
    """Accept analyser connections on ``host:port`` and run ``handler`` for each one."""

    def __init__(self, name: str, host: str, port: int, handler: StreamHandler, status: StatusBoard, *,
                 tls: ssl.SSLContext | None = None, max_read: int = DEFAULT_MAX_READ) -> None:
        self.name = name
        self.host, self.port = host, port
        self._handler = handler
        self._status = status
        self._tls = tls
        self._max_read = max_read
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: set[AsyncioStream] = set()
        self._connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, ssl=self._tls,
                                                  reuse_address=True)
        self._status.set_state(self.name, "listening", f"{self.host}:{self.port}")
        log.info("instrument %s: listening on %s:%d%s", self.name, self.host, self.port, " (TLS)" if self._tls else "")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for stream in list(self._streams):
            await stream.close()  # the session sees end of stream and finishes its work
        if self._tasks:
            _done, late = await asyncio.wait(list(self._tasks), timeout=5)
            for task in late:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._status.set_state(self.name, "stopped")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        stream = AsyncioStream(reader, writer, self._max_read)
        self._streams.add(stream)
        self._connections += 1
        self._status.set_state(self.name, "connected", stream.peer)
        log.info("instrument %s: connection from %s", self.name, stream.peer)
        try:
            await self._handler(stream)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("instrument %s: session with %s failed", self.name, stream.peer)
            self._status.error(self.name, f"session failed: {type(exc).__name__}: {exc}")
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            self._streams.discard(stream)
            self._connections -= 1
            await stream.close()
            log.info("instrument %s: %s disconnected", self.name, stream.peer)
            if self._connections == 0 and self._server is not None and self._server.is_serving():
                self._status.set_state(self.name, "listening", f"{self.host}:{self.port}")


class TcpClient:
    """Keep one connection to an analyser that listens; reconnect with exponential backoff."""

    def __init__(self, name: str, host: str, port: int, handler: StreamHandler, status: StatusBoard, *,
                 tls: ssl.SSLContext | None = None, initial_backoff: float = 0.5, max_backoff: float = 30.0,
                 connect_timeout: float = 10.0, max_read: int = DEFAULT_MAX_READ) -> None:
        self.name = name
        self.host, self.port = host, port
        self._handler = handler
        self._status = status
        self._tls = tls
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self._connect_timeout = connect_timeout
        self._max_read = max_read
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._status.set_state(self.name, "connecting", f"{self.host}:{self.port}")
        self._task = asyncio.create_task(self._run(), name=f"tcp-client {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._status.set_state(self.name, "stopped")

    async def _run(self) -> None:
        backoff = self.initial_backoff
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, ssl=self._tls), self._connect_timeout)
            except (OSError, TimeoutError) as exc:
                self._status.set_state(self.name, "connecting", f"{self.host}:{self.port}")
                log.info("instrument %s: cannot connect to %s:%d (%s); retry in %.1f s", self.name, self.host,
                         self.port, type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.initial_backoff
            stream = AsyncioStream(reader, writer, self._max_read)
            self._status.set_state(self.name, "connected", stream.peer)
            log.info("instrument %s: connected to %s", self.name, stream.peer)
            await run_session(self._handler, stream, self.name, self._status)
            self._status.set_state(self.name, "disconnected")
            log.info("instrument %s: connection to %s closed; reconnecting", self.name, stream.peer)
            await asyncio.sleep(self.initial_backoff)
