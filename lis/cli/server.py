"""``lis serve``: check the database, wire the packages together, run uvicorn with the API and web UI."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlmodel import select

from lis.api.app import create_api
from lis.cli.common import fail, open_db
from lis.config import Config, InstrumentConfig
from lis.context import LisContext
from lis.db import DatabaseUnavailable
from lis.events import ResultsIngested
from lis.migrate import require_current
from lis.models import Instrument
from lis.runtime import PendingJournalCatchUp, Runtime
from lis.services.spool import JournalSpool, spool_path

log = logging.getLogger(__name__)


def describe_connection(inst: InstrumentConfig) -> str:
    if inst.transport == "serial":
        return f"{inst.device}@{inst.baudrate}-{inst.bytesize}{inst.parity}{inst.stopbits}"
    scheme = "listen" if inst.transport == "tcp-server" else "connect"
    return f"{scheme} tcp://{inst.host}:{inst.port}"


def sync_instruments(ctx: LisContext) -> None:
    """Make the instrument table mirror ``[[instruments]]`` (names are the link between them)."""
    with ctx.db.write() as session:
        existing = {i.name: i for i in session.exec(select(Instrument)).all()}
        for inst in ctx.config.instruments:
            row = existing.get(inst.name) or Instrument(name=inst.name, profile=inst.profile, protocol=inst.protocol,
                                                        transport=inst.transport)
            row.profile, row.protocol, row.transport = inst.profile, inst.protocol, inst.transport
            row.model, row.enabled, row.connection = inst.model, inst.enabled, describe_connection(inst)
            session.add(row)


def build_context(config: Config) -> LisContext:
    """The composition root: core context plus the drivers' parsers."""
    from drivers.wiring import register_parsers

    ctx = LisContext(config, open_db(config))
    register_parsers(ctx.parsers, profile_dirs=(config.data_dir / "profiles",))
    return ctx


def build_runtime(ctx: LisContext) -> Runtime:
    from drivers.wiring import instrument_links
    from lis.services.workflow.wiring import wire_workflow

    runtime = Runtime()
    # evaluation and QC run on the bus thread, never on the analyser links' event loop
    ctx.bus.deliver_in_background(ResultsIngested)
    spool = JournalSpool(spool_path(ctx.config.data_dir))
    runtime.add(PendingJournalCatchUp(ctx.ingest, spool))  # before the links: what the last run left
    runtime.add(wire_workflow(ctx))  # evaluation + autoverification on arrival, catch-up at start
    for link in instrument_links(ctx, spool):
        runtime.add(link)
    return runtime


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            fail(f"web port {host}:{port} is not available ({exc.strerror}); choose another with web.port or --port")


def web_secret(config: Config) -> str:
    if config.web.secret:
        return config.web.secret
    path = Path(config.data_dir) / "web-secret.key"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(ctx: LisContext, runtime: Runtime | None = None, *, with_web: bool = True,
               outbox_settings: Any = None) -> FastAPI:
    """The whole application: API, QC and EMR interfaces, then the web UI (mounted last, at "/").

    ``outbox_settings`` (an ``interfaces.worker.OutboxSettings``) overrides the EMR outbox timing (tests).
    """
    app = create_api(ctx)
    base_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        async with base_lifespan(app_):
            if runtime is not None:
                await runtime.start()
            try:
                yield
            finally:
                if runtime is not None:
                    await runtime.stop()

    app.router.lifespan_context = lifespan
    from qc.wiring import install as install_qc

    install_qc(ctx, app, runtime)  # QC service on ResultsIngested, /api/v1/qc routes, periodic QC check
    from interfaces.wiring import install as install_interfaces

    install_interfaces(ctx, app, runtime,  # EMR outbox (release hook + worker), order listeners, report signing
                       settings=outbox_settings, embed_pdf=frozenset(e.name for e in ctx.config.emr if e.embed_pdf))
    if with_web:
        from web.app import setup as setup_web

        setup_web(app, ctx, storage_secret=web_secret(ctx.config))
    return app


def serve(config: Config, *, host: str | None = None, port: int | None = None, config_hint: str = "") -> None:
    host = host or config.web.host
    port = port or config.web.port
    ctx = build_context(config)
    try:
        require_current(ctx.db, config_hint)
    except DatabaseUnavailable as exc:
        fail(str(exc))
    sync_instruments(ctx)
    check_port_free(host, port)
    app = create_app(ctx, build_runtime(ctx))
    log.info("Open LIS serving on http://%s:%d (%s database)", host, port, ctx.db.dialect)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=5))
    server.run()
    if not server.started:
        fail(f"the server could not start on {host}:{port}")
