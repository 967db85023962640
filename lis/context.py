"""The running LIS: configuration, database, event bus, parsers and services in one object.

Built by the CLI composition root and handed to the API, the web pages, the drivers and interfaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lis.config import Config
from lis.db import Database
from lis.events import EventBus
from lis.instrument_status import StatusBoard
from lis.parsers import ParserRegistry
from lis.services.catalog import CatalogCache
from lis.services.ingest import IngestService
from lis.services.workflow.service import WorkflowService


@dataclass
class LisContext:
    config: Config
    db: Database
    bus: EventBus = field(default_factory=EventBus)
    parsers: ParserRegistry = field(default_factory=ParserRegistry)
    status: StatusBoard = field(default_factory=StatusBoard)
    catalog: CatalogCache = field(init=False)
    ingest: IngestService = field(init=False)
    workflow: WorkflowService = field(init=False)  # result workflow; wire_workflow(ctx) subscribes it

    def __post_init__(self) -> None:
        self.catalog = CatalogCache(self.db)
        self.ingest = IngestService(self.db, self.parsers, self.bus, self.config.instrument, self.catalog)
        self.workflow = WorkflowService(self.db, self.bus, self.catalog)

    @classmethod
    def open(cls, config: Config) -> LisContext:
        return cls(config, Database.from_url(config.database_url, pool_size=config.database.pool_size,
                                             echo=config.database.echo))
