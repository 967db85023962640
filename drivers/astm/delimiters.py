"""LIS2-A2 (ASTM E1394) delimiters and escape sequences.

LIS2-A2, delimiter definition: the header record declares the four delimiters in its first characters after ``H``:
field, repeat, component, escape (``H|\\^&`` by default; GeneXpert ``H|@^\\``, Erba ``H|`^&``). They
are always read from the H record, never assumed.

LIS2-A2, escape sequences: inside a field, the escape character introduces ``&F&`` (field delimiter), ``&S&``
(component delimiter), ``&R&`` (repeat delimiter), ``&E&`` (escape character) and ``&Xhh..&``
(hexadecimal bytes), written here with ``&`` standing for the declared escape character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property


class RecordError(ValueError):
    """Text is not a valid LIS2-A2 message; the message names the record and the problem."""


@dataclass(frozen=True)
class Delimiters:
    """The four LIS2-A2 delimiters of one message."""

    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    def __post_init__(self) -> None:
        chars = (self.field, self.repeat, self.component, self.escape)
        if any(len(c) != 1 for c in chars):
            raise RecordError(f"delimiters must be single characters, got {chars!r}")
        if len(set(chars)) != 4:
            raise RecordError(f"the four delimiters must differ, got {''.join(chars)!r}")
        if any(c.isalnum() or c in "\r\n" for c in chars):
            raise RecordError(f"delimiters must not be letters, digits or line ends, got {''.join(chars)!r}")

    @classmethod
    def from_header(cls, header: str) -> Delimiters:
        """Delimiters declared by a header record line ``H|\\^&...`` (LIS2-A2 delimiter definition)."""
        if len(header) < 5 or header[0] != "H":
            raise RecordError(f"header record too short to declare delimiters: {header[:20]!r}")
        return cls(field=header[1], repeat=header[2], component=header[3], escape=header[4])

    @property
    def definition(self) -> str:
        """The H-2 delimiter definition text, e.g. ``\\^&``."""
        return self.repeat + self.component + self.escape

    @cached_property
    def _escape_re(self) -> re.Pattern[str]:
        e = re.escape(self.escape)
        return re.compile(f"{e}(F|S|R|E|X[0-9A-Fa-f]+){e}")

    @cached_property
    def _unescape_map(self) -> dict[str, str]:
        return {"F": self.field, "S": self.component, "R": self.repeat, "E": self.escape}

    @cached_property
    def _escape_table(self) -> dict[int, str]:
        e = self.escape
        table = {ord(e): f"{e}E{e}", ord(self.field): f"{e}F{e}", ord(self.component): f"{e}S{e}",
                 ord(self.repeat): f"{e}R{e}"}
        for code in range(0x20):  # LIS1-A restricted characters: never appear raw in text
            table[code] = f"{e}X{code:02X}{e}"
        table[0x7F] = f"{e}X7F{e}"
        return table

    def escape_text(self, text: str) -> str:
        """Text made safe for one component: delimiters, escape and control characters escaped."""
        return text.translate(self._escape_table)

    def unescape(self, text: str, encoding: str = "latin-1") -> str:
        """Undo LIS2-A2 escapes in one component. ``&Xhh&`` bytes are decoded with ``encoding``.

        Unknown sequences (``&H&`` highlighting, ``&Zcc&`` local ones) are kept as sent.
        """
        if self.escape not in text:
            return text
        mapping = self._unescape_map

        def replace(match: re.Match[str]) -> str:
            code = match.group(1)
            if code[0] != "X":
                return mapping[code]
            digits = code[1:]
            if len(digits) % 2:
                return match.group(0)
            try:
                return bytes.fromhex(digits).decode(encoding)
            except UnicodeDecodeError:
                return match.group(0)

        return self._escape_re.sub(replace, text)

    def split_field(self, wire: str, encoding: str = "latin-1") -> list[list[str]]:
        """A field's repeats, each a list of unescaped components."""
        return [
            [self.unescape(c, encoding) for c in rep.split(self.component)] for rep in wire.split(self.repeat)
        ]

    def join_field(self, repeats: list[list[str]] | list[str] | str) -> str:
        """Wire text of a field from a plain value, a component list or a list of repeats."""
        if isinstance(repeats, str):
            return self.escape_text(repeats)
        if repeats and all(isinstance(r, str) for r in repeats):
            return self.component.join(self.escape_text(c) for c in repeats)  # type: ignore[arg-type]
        return self.repeat.join(
            self.component.join(self.escape_text(c) for c in rep) for rep in repeats  # type: ignore[union-attr]
        )

    def translate_field(self, wire: str, target: Delimiters) -> str:
        """The same field written with another delimiter set."""
        if target == self:
            return wire
        return target.join_field(self.split_field(wire))


DEFAULT_DELIMITERS = Delimiters()
