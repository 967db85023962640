"""One configured analyser as a running component: its transport, its sessions, its shared services.

:class:`InstrumentChannel` is what every session of one instrument shares: the configuration and profile,
the group-commit journal, the ordered processor, the status board and the database (for host queries).
:class:`InstrumentLink` is the :class:`lis.runtime.Component` the server starts: it picks the transport from
``InstrumentConfig.transport`` (``tcp-server``, ``tcp-client``, ``serial``) and runs one protocol session
(ASTM LIS1-A or HL7 MLLP) per connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol, TypeVar

from drivers.profile import Profile
from drivers.transports.journal import GroupJournal, OrderedProcessor
from drivers.transports.serial_port import SerialLink
from drivers.transports.stream import ByteStream
from drivers.transports.tcp import TcpClient, TcpServer
from lis.config import InstrumentConfig
from lis.db import Database
from lis.instrument_status import StatusBoard
from lis.models import RawMessageStatus
from lis.services.ingest import IngestService
from lis.services.spool import SpoolEntry, SpoolItem

if TYPE_CHECKING:
    from lis.services.host_query import PendingSpecimen

log = logging.getLogger(__name__)
T = TypeVar("T")


class OrderSession(Protocol):
    """A live session that can download orders to its analyser (push mode)."""

    async def push(self, specimens: list[PendingSpecimen]) -> int: ...


@dataclass
class InstrumentChannel:
    """What the sessions of one instrument share."""

    config: InstrumentConfig
    profile: Profile
    ingest: IngestService
    journal: GroupJournal
    status: StatusBoard
    db: Database
    processor: OrderedProcessor = field(init=False)
    sessions: list[OrderSession] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.processor = OrderedProcessor(self.journal.runner, self.journal, self.ingest.bus, self.config.name,
                                          on_error=partial(self.status.error, self.config.name),
                                          on_backlog=partial(self.status.backlog, self.config.name))

    @property
    def name(self) -> str:
        return self.config.name

    def _item(self, raw: bytes, peer: str, **how: str) -> SpoolItem:
        return SpoolItem(self.name, self.config.protocol, raw, peer, **how)

    async def journal_in(self, raw: bytes, peer: str) -> SpoolEntry:
        """Commit a received message durably to the journal spool (journal before acknowledge); raises if it
        could not be kept. The caller acknowledges, then hands the entry to :attr:`processor`."""
        return await self.journal.journal(self._item(raw, peer))

    async def quarantine(self, raw: bytes, reason: str, peer: str) -> None:
        """Keep bytes that could not be framed or understood as an error journal entry (the quarantine)."""
        try:
            entry = await self.journal.journal(self._item(raw, peer, status=RawMessageStatus.ERROR, error=reason))
        except Exception:
            log.exception("instrument %s: could not quarantine %d bytes", self.name, len(raw))
            return
        self.processor.submit(entry)

    async def journal_out(self, message: bytes, peer: str) -> None:
        """Keep a message the LIS sent (host-query answer, order download) in the journal, direction ``out``."""
        try:
            entry = await self.journal.journal(self._item(message, peer, direction="out",
                                                          status=RawMessageStatus.PROCESSED))
        except Exception:
            log.exception("instrument %s: outgoing message not journaled", self.name)
            return
        self.processor.submit(entry)

    @property
    def encoding(self) -> str:
        return self.config.encoding or self.profile.encoding


SessionFactory = Callable[[InstrumentChannel, ByteStream], "SessionRunner"]


class SessionRunner(Protocol):
    async def run(self) -> None: ...


class InstrumentLink:
    """The runtime component of one instrument (see module docstring)."""

    def __init__(self, channel: InstrumentChannel, session_factory: SessionFactory, *,
                 tls: ssl.SSLContext | None = None, backoff: float = 0.5) -> None:
        self.channel = channel
        self.name = f"instrument {channel.name}"
        self._factory = session_factory
        cfg = channel.config
        self.transport: TcpServer | TcpClient | SerialLink
        if cfg.transport == "tcp-server":
            assert cfg.port is not None
            self.transport = TcpServer(cfg.name, cfg.host, cfg.port, self._handle, channel.status, tls=tls)
        elif cfg.transport == "tcp-client":
            assert cfg.port is not None
            self.transport = TcpClient(cfg.name, cfg.host, cfg.port, self._handle, channel.status, tls=tls,
                                       initial_backoff=backoff)
        else:
            self.transport = SerialLink(cfg.name, cfg.device, self._handle, channel.status, baudrate=cfg.baudrate,
                                        bytesize=cfg.bytesize, parity=cfg.parity, stopbits=cfg.stopbits)

    async def _handle(self, stream: ByteStream) -> None:
        session = self._factory(self.channel, stream)
        await session.run()

    async def start(self) -> None:
        await self.transport.start()

    async def stop(self) -> None:
        await self.transport.stop()
        try:  # finish what is journaled (else the start-up catch-up does it next time)
            await asyncio.wait_for(self.channel.processor.join(), 5)
        except TimeoutError:
            log.info("instrument %s: stopping with messages still to process", self.channel.name)
        await self.channel.processor.stop()

    async def push(self, specimens: list[PendingSpecimen]) -> int:
        """Download orders for ``specimens`` on the first live session; returns how many were sent."""
        for session in list(self.channel.sessions):
            return await session.push(specimens)
        raise ConnectionError(f"instrument {self.channel.name} is not connected")
