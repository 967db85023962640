"""RS-232 transport (LIS1-A over a serial line) with pyserial, driven by the asyncio loop.

The port is opened non-blocking (pyserial opens POSIX ports with ``O_NONBLOCK``) and watched with
``loop.add_reader`` / ``loop.add_writer``, so reads and writes never block the event loop and no thread per
port is needed. Line settings come from the instrument configuration (LIS1-A physical layer: 9600 8N1 is the
default; 7E1 etc. as the analyser is set): ``baudrate``, ``bytesize``, ``parity``, ``stopbits``.

When the port disappears (USB adapter unplugged, device node removed) the session ends and
:class:`SerialLink` reopens it every ``retry_interval`` seconds until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import serial

from drivers.transports.stream import DEFAULT_MAX_READ, StreamHandler, run_session
from lis.instrument_status import StatusBoard

log = logging.getLogger(__name__)

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD, "M": serial.PARITY_MARK,
           "S": serial.PARITY_SPACE}
_STOPBITS = {1: serial.STOPBITS_ONE, 1.5: serial.STOPBITS_ONE_POINT_FIVE, 2: serial.STOPBITS_TWO}


def open_serial(device: str, baudrate: int = 9600, bytesize: int = 8, parity: str = "N",
                stopbits: float = 1) -> serial.Serial:
    """Open ``device`` with the given line settings, non-blocking (``timeout=0``)."""
    return serial.Serial(device, baudrate=baudrate, bytesize=bytesize, parity=_PARITY[parity],
                         stopbits=_STOPBITS[stopbits], timeout=0, write_timeout=0, xonxoff=False,
                         rtscts=False, dsrdtr=False, exclusive=True)


class SerialStream:
    """:class:`~drivers.transports.stream.ByteStream` over an open pyserial port."""

    def __init__(self, port: serial.Serial, max_read: int = DEFAULT_MAX_READ) -> None:
        self._port = port
        self._fd: int = port.fileno()
        self._max_read = max_read
        self._loop = asyncio.get_running_loop()
        self._out = bytearray()
        self._drained: asyncio.Event = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._reading: asyncio.Future[None] | None = None
        self.peer = str(port.port)

    async def read(self) -> bytes:
        """Wait until the port is readable and return what it holds; ``b""`` when the port is gone."""
        if self._closed:
            return b""
        ready: asyncio.Future[None] = self._loop.create_future()
        self._reading = ready
        self._loop.add_reader(self._fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            self._reading = None
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        if self._closed:
            return b""
        try:
            data = os.read(self._fd, self._max_read)
        except BlockingIOError:
            return await self.read()
        except OSError:
            return b""
        return data  # b"" when the other end of a pty closed or the device vanished

    def write(self, data: bytes) -> None:
        if self._closed or not data:
            return
        if not self._out:
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._closed = True
                return
            data = data[sent:]
            if not data:
                return
        self._out += data
        if self._drained.is_set():
            self._drained.clear()
            self._loop.add_writer(self._fd, self._flush)

    def _flush(self) -> None:
        try:
            sent = os.write(self._fd, self._out)
        except BlockingIOError:
            return
        except OSError:
            sent = len(self._out)
            self._closed = True
        del self._out[:sent]
        if not self._out:
            self._loop.remove_writer(self._fd)
            self._drained.set()

    async def drain(self) -> None:
        await self._drained.wait()

    async def close(self) -> None:
        if self._out and not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), 2)
        self._closed = True
        if self._reading is not None and not self._reading.done():
            self._reading.set_result(None)  # wake the reader: end of stream
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self._fd)
        with contextlib.suppress(Exception):
            self._port.close()


class SerialLink:
    """Keep a serial port open for one instrument and run ``handler`` on it; reopen when it disappears."""

    def __init__(self, name: str, device: str, handler: StreamHandler, status: StatusBoard, *, baudrate: int = 9600,
                 bytesize: int = 8, parity: str = "N", stopbits: float = 1, retry_interval: float = 2.0,
                 max_read: int = DEFAULT_MAX_READ) -> None:
        self.name = name
        self.device = device
        self._handler = handler
        self._status = status
        self._settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": parity, "stopbits": stopbits}
        self.retry_interval = retry_interval
        self._max_read = max_read
        self._task: asyncio.Task[None] | None = None

    @property
    def describe(self) -> str:
        s = self._settings
        return f"{self.device}@{s['baudrate']}-{s['bytesize']}{s['parity']}{s['stopbits']}"

    async def start(self) -> None:
        self._status.set_state(self.name, "connecting", self.describe)
        self._task = asyncio.create_task(self._run(), name=f"serial {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._status.set_state(self.name, "stopped")

    async def _run(self) -> None:
        reported = False
        while True:
            try:
                port = open_serial(self.device, **self._settings)  # type: ignore[arg-type]
            except (serial.SerialException, OSError, ValueError) as exc:
                if not reported:
                    log.warning("instrument %s: cannot open %s: %s; retrying every %.0f s", self.name, self.device,
                                exc, self.retry_interval)
                    self._status.error(self.name, f"cannot open {self.device}: {exc}")
                    reported = True
                self._status.set_state(self.name, "disconnected", self.describe)
                await asyncio.sleep(self.retry_interval)
                continue
            reported = False
            stream = SerialStream(port, self._max_read)
            self._status.set_state(self.name, "connected", self.describe)
            log.info("instrument %s: serial port %s open", self.name, self.describe)
            await run_session(self._handler, stream, self.name, self._status)
            self._status.set_state(self.name, "disconnected", self.describe)
            log.info("instrument %s: serial port %s closed; reopening", self.name, self.device)
            await asyncio.sleep(self.retry_interval)
