"""Wiring of the EMR side into the running LIS (called by the composition root, ``lis/cli/server.py``).

``install(ctx, app, runtime)``:

* configures the outbox destinations from ``[[emr]]`` and registers :func:`interfaces.outbox.enqueue_release`
  as an in-transaction release hook of the workflow service (issue 6), and wakes the worker on
  ``ResultReleased``;
* adds the REST routes (outbox status and retry, deliveries per result, signed reports, inbound EMR messages,
  ``POST /api/v1/fhir/ServiceRequest``);
* adds the runtime components: the outbox worker and one MLLP order listener per ``[[emr]]`` with a
  ``listen_port``.
"""

from __future__ import annotations

import logging
import multiprocessing
import ssl
import weakref
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interfaces import outbox
from interfaces.delivery import Transport
from interfaces.fhir_client import FhirTransport
from interfaces.hl7_oru import OruOptions
from interfaces.mllp_client import MllpTransport
from interfaces.prepare import Preparer
from interfaces.report_pdf import Letterhead, ReportFontMissing, find_font
from interfaces.reports import ReportSettings
from interfaces.signing import Pkcs12Signer, ReportSigner, pki_dir
from interfaces.worker import DestinationRuntime, OutboxSettings, OutboxWorker
from lis.config import Config, EmrConfig
from lis.db import Database

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lis.context import LisContext
    from lis.runtime import Runtime

log = logging.getLogger(__name__)


def tls_context(config: Config, emr: EmrConfig) -> ssl.SSLContext | None:
    """TLS for an EMR connection: system trust plus ``<data_dir>/tls/<emr name>-ca.pem`` when present."""
    if not emr.tls:
        return None
    ca = Path(config.data_dir) / "tls" / f"{emr.name}-ca.pem"
    return ssl.create_default_context(cafile=str(ca) if ca.exists() else None)


def transport_factory(config: Config, emr: EmrConfig) -> Any:
    """A zero-argument callable making one transport (one connection) for ``emr``."""
    if emr.kind == "hl7-mllp":
        context = tls_context(config, emr)

        def make_mllp() -> Transport:
            assert emr.port is not None
            return MllpTransport(emr.host, emr.port, timeout=emr.timeout_seconds, ssl_context=context, name=emr.name)

        return make_mllp
    context_or_verify: ssl.SSLContext | bool = tls_context(config, emr) or True

    def make_fhir() -> Transport:
        return FhirTransport(emr.base_url, timeout=emr.timeout_seconds, verify=context_or_verify, name=emr.name)

    return make_fhir


def destination_runtimes(config: Config) -> list[DestinationRuntime]:
    out = [DestinationRuntime(outbox.REPORT_SIGNING, "signed-report", 1, lambda: None)]  # type: ignore[arg-type,return-value]
    for emr in config.emr:
        if emr.enabled:
            out.append(DestinationRuntime(emr.name, emr.kind, emr.max_attempts, transport_factory(config, emr)))
    return out


def report_settings(config: Config) -> ReportSettings | None:
    try:
        font = find_font(config.data_dir)
    except ReportFontMissing as exc:
        log.warning("%s: reports will not be signed", exc)
        return None
    return ReportSettings(Letterhead(config.site.name, config.site.address, config.site.timezone), font)


def default_signer(config: Config) -> ReportSigner:
    return Pkcs12Signer(pki_dir(config.data_dir) / "users")


def build_preparer(db: Database, config: Config, *, signer: ReportSigner | None = None,
                   embed_pdf: frozenset[str] = frozenset()) -> Preparer:
    options = {
        e.name: OruOptions(sending_application="OPENLIS", sending_facility=config.site.name[:20],
                           receiving_application=e.receiving_application, receiving_facility=e.receiving_facility,
                           timezone=config.site.timezone)
        for e in config.emr if e.kind == "hl7-mllp"
    }
    from interfaces.fhir_bundle import FhirSystems

    return Preparer(db, oru_options=options, fhir_systems=FhirSystems(timezone=config.site.timezone),
                    report_settings=report_settings(config), signer=signer or default_signer(config),
                    embed_pdf=embed_pdf)


def build_worker(db: Database, config: Config, *, settings: OutboxSettings | None = None,
                 signer: ReportSigner | None = None, embed_pdf: frozenset[str] = frozenset()) -> OutboxWorker:
    """The outbox worker; with ``settings.prepare_processes`` > 0 (and the default PKCS#12 signer) payloads are
    built in that many ``spawn``-ed processes, since hl7apy and PDF signing are CPU-bound."""
    settings = settings or OutboxSettings()
    if settings.prepare_processes is None:
        settings = replace(settings, prepare_processes=2 if db.dialect == "postgresql" else 0)
    pool = None
    if settings.prepare_processes and signer is None:
        url = db.engine.url.render_as_string(hide_password=False)

        def pool() -> Executor:
            from interfaces.prepare import init_child

            return ProcessPoolExecutor(settings.prepare_processes or 1, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=init_child,
                                       initargs=(url, config.model_dump_json(), tuple(sorted(embed_pdf))))

    return OutboxWorker(db, destination_runtimes(config), build_preparer(db, config, signer=signer,
                                                                         embed_pdf=embed_pdf), settings, pool)


@dataclass
class Installed:
    worker: OutboxWorker
    listeners: list[Any] = field(default_factory=list)


def listen_host(config: Config) -> str:
    """Order listeners bind where the web server binds: loopback for a local install, all interfaces otherwise."""
    return "127.0.0.1" if config.web.host in ("127.0.0.1", "localhost", "::1") else "0.0.0.0"


_installed: weakref.WeakKeyDictionary[Any, Installed] = weakref.WeakKeyDictionary()


def install(ctx: LisContext, app: FastAPI | None, runtime: Runtime | None, *,
            settings: OutboxSettings | None = None, signer: ReportSigner | None = None,
            embed_pdf: frozenset[str] = frozenset()) -> Installed:
    """Wire the EMR side into a running LIS (see the module docstring).

    ``embed_pdf``: names of HL7 destinations that also get the signed PDF as a last OBX of type ED.
    """
    from interfaces.api import router
    from interfaces.order_listener import MllpOrderListener
    from interfaces.orders_in import InboundHandler
    from lis.events import ResultReleased

    if ctx.bus in _installed:  # once per LIS context: a second release hook would deliver everything twice
        return _installed[ctx.bus]
    outbox.configure(ctx.config.emr, sign_reports=True)
    ctx.workflow.add_release_hook(outbox.enqueue_release)
    worker = build_worker(ctx.db, ctx.config, settings=settings, signer=signer, embed_pdf=embed_pdf)
    ctx.bus.subscribe(ResultReleased, worker.wake)
    installed = Installed(worker)
    _installed[ctx.bus] = installed
    if app is not None:
        app.state.outbox_worker = worker
        app.include_router(router, prefix="/api/v1")
    if runtime is not None:
        runtime.add(worker)
        for emr in ctx.config.emr:
            if emr.enabled and emr.listen_port:
                handler = InboundHandler(ctx.db, ctx.catalog.get, ctx.bus, emr.name, ctx.config.site.timezone)
                listener = MllpOrderListener(handler, listen_host(ctx.config), emr.listen_port)
                runtime.add(listener)
                installed.listeners.append(listener)
    return installed
