"""Registry of message parsers by protocol: drivers register here, the ingest service looks up.

``lis`` never imports ``drivers``; the CLI composition root calls :func:`ParserRegistry.register`
with the drivers' ``parse_astm`` / ``parse_hl7`` functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lis.config import InstrumentConfig
from lis.instrument_report import InstrumentReport

Parser = Callable[[bytes, InstrumentConfig], InstrumentReport]


class UnknownProtocol(LookupError):
    pass


@dataclass
class ParserRegistry:
    _parsers: dict[str, Parser] = field(default_factory=dict)

    def register(self, protocol: str, parser: Parser) -> None:
        self._parsers[protocol] = parser

    def parse(self, raw: bytes, instrument: InstrumentConfig) -> InstrumentReport:
        parser = self._parsers.get(instrument.protocol)
        if parser is None:
            raise UnknownProtocol(f"no parser registered for protocol {instrument.protocol!r}")
        return parser(raw, instrument)

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(self._parsers)
