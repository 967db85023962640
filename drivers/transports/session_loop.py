"""The loop that drives a sans-IO protocol core from a byte stream (ARCHITECTURE.md principle 1).

One reader task pumps chunks from the stream into an inbox; the session loop takes them one by one, feeds
them to the core with ``time.monotonic()``, writes what the core says to write, and wakes up at the core's
next deadline to run its timers. Other tasks (a host-query answer, a push from the API) never touch the
core directly: they :meth:`SessionLoop.post` a command that the loop runs between two chunks, so the state
machine only ever sees one caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from drivers.transports.stream import ByteStream

Command = Callable[[], Awaitable[None]]


async def _tick() -> None:
    """Timer marker put into the inbox when the core's deadline is due."""


class SessionLoop:
    """Base class of a per-connection session; subclasses implement the four hooks."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self._inbox: asyncio.Queue[bytes | Command | None] = asyncio.Queue()
        self._background: set[asyncio.Task[None]] = set()
        self.closed = False

    # -- hooks ------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` must run next (``time.monotonic()`` scale), or None."""
        return None

    async def on_data(self, data: bytes, now: float) -> None:
        raise NotImplementedError

    async def on_timer(self, now: float) -> None:
        return None

    async def on_close(self, now: float) -> None:
        return None

    # -- API --------------------------------------------------------------------------------------
    def post(self, command: Command) -> None:
        """Run ``command`` inside the session loop (the only place the protocol core is touched)."""
        self._inbox.put_nowait(command)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run a background job tied to this session (kept referenced until done)."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[assignment]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.create_task(self._pump())
        timer: asyncio.TimerHandle | None = None
        armed: float | None = None
        try:
            while True:
                deadline = self.next_deadline()
                if deadline is not None and deadline <= time.monotonic() and self._inbox.empty():
                    await self.on_timer(time.monotonic())
                    continue
                # one timer, not a wait_for per chunk; and not re-armed when the deadline only moves later
                # (LIS1-A receiver timer: every frame pushes it 30 s on): a tick that comes early re-arms
                if deadline is None:
                    if timer is not None:
                        timer.cancel()
                    timer = armed = None
                elif armed is None or deadline < armed:
                    if timer is not None:
                        timer.cancel()
                    timer = loop.call_at(loop.time() + deadline - time.monotonic(), self._inbox.put_nowait, _tick)
                    armed = deadline
                item = await self._inbox.get()
                if item is None:
                    break
                if item is _tick:
                    armed = None
                    timer = None
                    if deadline is not None and time.monotonic() >= deadline:
                        await self.on_timer(time.monotonic())
                    continue
                if isinstance(item, bytes):
                    await self.on_data(item, time.monotonic())
                else:
                    await item()
                await self.stream.drain()
        finally:
            if timer is not None:
                timer.cancel()
            self.closed = True
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await self.on_close(time.monotonic())
            for task in list(self._background):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5)

    async def _pump(self) -> None:
        try:
            while True:
                data = await self.stream.read()
                if not data:
                    break
                self._inbox.put_nowait(data)
        finally:
            self._inbox.put_nowait(None)
