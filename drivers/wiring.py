"""What the composition root takes from ``drivers``: parsers per protocol and the analyser links."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.astm import parse_astm
from drivers.hl7 import parse_hl7
from drivers.profile import get_profile
from lis.config import InstrumentConfig
from lis.instrument_report import InstrumentReport
from lis.parsers import ParserRegistry
from lis.services.spool import JournalSpool, spool_path

if TYPE_CHECKING:
    from drivers.transports.instrument import InstrumentLink
    from drivers.transports.journal import GroupJournal
    from lis.context import LisContext
    from lis.runtime import Component

log = logging.getLogger(__name__)

# instrument name -> running link, for push mode (the API / UI call push_orders)
LINKS: dict[str, InstrumentLink] = {}


def register_parsers(registry: ParserRegistry, profile_dirs: tuple[Path, ...] = ()) -> None:
    """Register the ASTM (LIS2-A2) and HL7 v2 parsers; each resolves the instrument's profile."""
    def astm(raw: bytes, instrument: InstrumentConfig) -> InstrumentReport:
        return parse_astm(raw, get_profile(instrument.profile, profile_dirs), instrument.encoding)

    def hl7(raw: bytes, instrument: InstrumentConfig) -> InstrumentReport:
        return parse_hl7(raw, get_profile(instrument.profile, profile_dirs), instrument.encoding)

    registry.register("astm", astm)
    registry.register("hl7", hl7)


class _JournalComponent:
    """The shared journal writer and processing worker: starts the worker process before the links (so the
    first message does not wait for it), stops both after the links."""

    name = "analyser journal and ingest worker"

    def __init__(self, journal: GroupJournal) -> None:
        self._journal = journal

    async def start(self) -> None:
        await self._journal.start()

    async def stop(self) -> None:
        self._journal.close()


def setup_worker(ctx: LisContext) -> None:
    """What the ingest worker process needs from ``drivers``: the parsers (see ``lis.services.ingest_worker``)."""
    register_parsers(ctx.parsers, profile_dirs=(ctx.config.data_dir / "profiles",))


def open_journal(ctx: LisContext, spool: JournalSpool | None = None, *, worker: str = "process") -> GroupJournal:
    """The links' journal: the spool (default: in the data directory) and the processing runner, a worker
    process (``lis serve``) or a thread of this process (``worker="thread"``: tests, tools)."""
    from drivers.transports.journal import GroupJournal
    from lis.services.ingest_worker import ProcessingRunner, ProcessRunner, ThreadRunner

    runner: ProcessingRunner
    if worker == "process":
        runner = ProcessRunner(ctx.config, setup_worker, catalog_generation=lambda: ctx.catalog.generation)
    else:
        runner = ThreadRunner(ctx.ingest)
    return GroupJournal(spool or JournalSpool(spool_path(ctx.config.data_dir)), runner)


def instrument_links(ctx: LisContext, spool: JournalSpool | None = None) -> list[Component]:
    """One link component per enabled instrument (TCP server, TCP client or serial; ASTM or HL7).

    All links of the process share one group-commit journal writer (journal before acknowledge) and one
    processing worker process.
    """
    from drivers.astm.session import AstmSession
    from drivers.hl7.session import Hl7Session
    from drivers.transports.instrument import InstrumentChannel, InstrumentLink

    if not any(inst.enabled for inst in ctx.config.instruments):
        return []
    journal = open_journal(ctx, spool)
    components: list[Component] = [_JournalComponent(journal)]
    profile_dirs = (ctx.config.data_dir / "profiles",)
    for inst in ctx.config.instruments:
        if not inst.enabled:
            continue
        profile = get_profile(inst.profile, profile_dirs)
        channel = InstrumentChannel(inst, profile, ctx.ingest, journal, ctx.status, ctx.db)
        factory = AstmSession if inst.protocol == "astm" else Hl7Session
        link = InstrumentLink(channel, factory, tls=_tls_for(inst))
        LINKS[inst.name] = link
        components.append(link)
    return components


def _tls_for(inst: InstrumentConfig) -> ssl.SSLContext | None:
    """MLLP over TLS when the instrument configuration names a certificate (``tls_cert``/``tls_key``/``tls_ca``
    keys, read when the configuration schema has them)."""
    from drivers.transports.tcp import tls_context

    cert, key, ca = (str(getattr(inst, f"tls_{k}", "") or "") for k in ("cert", "key", "ca"))
    if not (cert or ca) or inst.transport == "serial":
        return None
    return tls_context(server=inst.transport == "tcp-server", cert=cert, key=key, ca=ca)


async def push_orders(ctx: LisContext, instrument: str, specimen_ids: list[str] | None = None,
                      limit: int = 50) -> int:
    """Push mode: download the pending orders of ``specimen_ids`` (default: every pending specimen) to a
    connected instrument. Returns how many specimens the analyser accepted; raises ConnectionError when the
    instrument is not connected and LookupError when it is not configured."""
    from drivers.host_orders import lookup

    link = LINKS.get(instrument)
    if link is None:
        raise LookupError(f"instrument {instrument!r} has no running link")
    ch = link.channel
    answer = await lookup(ctx.db, instrument, ch.profile, specimen_ids or [], all_pending=not specimen_ids,
                          limit=limit)
    if not answer.found:
        return 0
    return await link.push(answer.found)
