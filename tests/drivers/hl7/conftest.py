"""Fixtures for the HL7 driver tests: realistic analyser messages stored with LF, sent with CR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).with_name("fixtures")
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.hl7"))


def load_fixture(name: str) -> bytes:
    """The fixture as an analyser sends it: segments terminated by CR (HL7 v2.5.1 2.5.2)."""
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r")


@pytest.fixture
def load() -> Callable[[str], bytes]:
    return load_fixture
