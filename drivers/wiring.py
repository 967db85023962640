"""What the composition root takes from ``drivers``: parsers per protocol and the analyser links."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from drivers.astm import parse_astm
from drivers.hl7 import parse_hl7
from drivers.profile import get_profile
from lis.config import InstrumentConfig
from lis.instrument_report import InstrumentReport
from lis.parsers import ParserRegistry

if TYPE_CHECKING:
    from lis.context import LisContext
    from lis.runtime import Component


def register_parsers(registry: ParserRegistry, profile_dirs: tuple[Path, ...] = ()) -> None:
    """Register the ASTM (LIS2-A2) and HL7 v2 parsers; each resolves the instrument's profile."""
    def astm(raw: bytes, instrument: InstrumentConfig) -> InstrumentReport:
        return parse_astm(raw, get_profile(instrument.profile, profile_dirs), instrument.encoding)

    def hl7(raw: bytes, instrument: InstrumentConfig) -> InstrumentReport:
        return parse_hl7(raw, get_profile(instrument.profile, profile_dirs), instrument.encoding)

    registry.register("astm", astm)
    registry.register("hl7", hl7)


def instrument_links(ctx: LisContext) -> list[Component]:
    """One link per enabled instrument (transports arrive with the ASTM/HL7 issues)."""
    return []
