r"""A fast HL7 v2 message parser for the ingest path (HL7 v2.5.1 chapter 2, "Control").

Rules implemented (section numbers of HL7 v2.5.1 chapter 2):

* 2.5.2 segments end with CR; LF and CRLF are accepted too (analysers and files use them).
* 2.5.4 / 2.15.9.1-2 the delimiters are read from the message: MSH-1 is the field separator (any character
  that is not a letter, digit or white space), MSH-2 the component, repetition, escape and subcomponent
  characters, in that order (a v2.7 truncation character, if present, is ignored).
* 2.7 escape sequences are resolved on the leaves: ``\F\ \S\ \T\ \R\ \E\`` (delimiters), ``\Xhh..\``
  (bytes in the message character set), ``\.br\`` and ``\.sp\`` (new line, as ``"\n"``); highlighting
  ``\H\ \N\``, other formatting commands and character-set switches ``\C..\ \M..\ \Z..\`` are removed.
* MSH-18 names the character set (see :mod:`drivers.hl7.charset`).

Numbering is HL7's, 1-based: ``seg.value(3, 1)`` is OBX-3.1; for MSH, field 1 is the field separator itself.
Splitting below field level is lazy, so reading the few fields a report needs costs little.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from drivers.hl7.charset import codec_for_charset


class ParseError(ValueError):
    """The bytes are not an HL7 v2 message this parser can read; ``str()`` gives the reason."""


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The message delimiters (HL7 v2.5.1 2.5.4); a missing optional one is the empty string."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


_FORMAT_NEWLINE = {".br", ".sp"}


def unescape(text: str, d: Delimiters, codec: str = "utf-8") -> str:
    """Resolve HL7 escape sequences (HL7 v2.5.1 2.7) in one leaf value."""
    esc = d.escape
    if not esc or esc not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find(esc, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(esc, j + 1)
        if k < 0:  # unterminated: keep literally
            out.append(text[j:])
            break
        seq = text[j + 1 : k]
        i = k + 1
        if seq == "F":
            out.append(d.field)
        elif seq == "S":
            out.append(d.component)
        elif seq == "T":
            out.append(d.subcomponent)
        elif seq == "R":
            out.append(d.repetition)
        elif seq == "E":
            out.append(esc)
        elif seq[:1] == "X" and len(seq) > 1:
            try:
                out.append(bytes.fromhex(seq[1:]).decode(codec, errors="replace"))
            except ValueError:
                out.append(esc + seq + esc)
        elif seq in _FORMAT_NEWLINE:
            out.append("\n")
        elif seq in ("H", "N") or seq[:1] in ("C", "M", "Z", "."):
            continue
        else:  # not an escape sequence: keep as sent
            out.append(esc + seq + esc)
    return "".join(out)


def escape(text: str, d: Delimiters = Delimiters()) -> str:
    """Escape delimiters in free text for an outgoing message (HL7 v2.5.1 2.7.1); CR/LF become ``\\.br\\``."""
    esc = d.escape
    text = text.replace(esc, f"{esc}E{esc}")
    for char, code in ((d.field, "F"), (d.component, "S"), (d.subcomponent, "T"), (d.repetition, "R")):
        if char:
            text = text.replace(char, f"{esc}{code}{esc}")
    if "\r" in text or "\n" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{esc}.br{esc}")
    return text


class Segment:
    """One segment: its name and its raw (still escaped) fields, split lazily below field level."""

    __slots__ = ("_codec", "_d", "_fields", "name")

    def __init__(self, name: str, fields: list[str], delimiters: Delimiters, codec: str) -> None:
        self.name = name
        self._fields = fields  # index = HL7 field number (MSH shifted so that MSH-1 is the separator)
        self._d = delimiters
        self._codec = codec

    def __repr__(self) -> str:
        return f"Segment({self.name!r}, {len(self._fields) - 1} fields)"

    @property
    def delimiters(self) -> Delimiters:
        return self._d

    @property
    def codec(self) -> str:
        return self._codec

    @property
    def raw(self) -> str:
        """The segment as sent (without its terminator)."""
        fields = self._fields
        if self.name == "MSH":
            return "MSH" + fields[1] + fields[1].join(fields[2:])
        return self._d.field.join(fields)

    def __len__(self) -> int:
        """Number of fields present (the highest field number sent)."""
        return len(self._fields) - 1

    def field(self, n: int) -> str:
        """Field ``n`` as sent (escaped, with its repetition/component delimiters); "" when absent."""
        fields = self._fields
        return fields[n] if 0 < n < len(fields) else ""

    def repeats(self, n: int) -> list[str]:
        """The repetitions of field ``n``, as sent (escaped); [] when the field is empty."""
        raw = self.field(n)
        if not raw:
            return []
        rep = self._d.repetition
        if self.name == "MSH" and n <= 2:
            return [raw]
        return raw.split(rep) if rep and rep in raw else [raw]

    def value(self, n: int, component: int = 1, subcomponent: int = 1, repeat: int = 1) -> str:
        """The unescaped leaf ``SEG-n[repeat].component.subcomponent`` (1-based); "" when absent."""
        raw = self.field(n)
        if not raw:
            return ""
        d = self._d
        if self.name == "MSH" and n <= 2:
            return raw
        rep = d.repetition
        if rep and rep in raw:
            reps = raw.split(rep)
            if repeat > len(reps):
                return ""
            raw = reps[repeat - 1]
        elif repeat != 1:
            return ""
        if d.component in raw:
            comps = raw.split(d.component)
            if component > len(comps):
                return ""
            raw = comps[component - 1]
        elif component != 1:
            return ""
        sub = d.subcomponent
        if sub and sub in raw:
            subs = raw.split(sub)
            if subcomponent > len(subs):
                return ""
            raw = subs[subcomponent - 1]
        elif subcomponent != 1:
            return ""
        esc = d.escape
        return unescape(raw, d, self._codec) if esc and esc in raw else raw

    def components(self, n: int, repeat: int = 1) -> list[str]:
        """The unescaped components of ``SEG-n[repeat]`` (subcomponents left joined by their delimiter)."""
        reps = self.repeats(n)
        if repeat > len(reps):
            return []
        d = self._d
        return [unescape(c, d, self._codec) for c in reps[repeat - 1].split(d.component)]

    def text(self, n: int, repeat: int = 1) -> str:
        """``SEG-n[repeat]`` unescaped with its components joined by the component delimiter."""
        return self._d.component.join(self.components(n, repeat))


class Message:
    """A parsed HL7 v2 message: segments in order, delimiters, the codec used and parse warnings."""

    __slots__ = ("_segments", "codec", "delimiters", "warnings")

    def __init__(self, segments: list[Segment], delimiters: Delimiters, codec: str, warnings: list[str]) -> None:
        self._segments = segments
        self.delimiters = delimiters
        self.codec = codec
        self.warnings = warnings

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def segments(self, name: str | None = None) -> list[Segment]:
        """All segments, or those called ``name`` (e.g. ``msg.segments("OBX")``), in message order."""
        if name is None:
            return list(self._segments)
        return [s for s in self._segments if s.name == name]

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, or None."""
        for s in self._segments:
            if s.name == name:
                return s
        return None

    @property
    def msh(self) -> Segment:
        return self._segments[0]

    def get(self, path: str) -> str:
        """Leaf value at ``SEG.field[.component[.subcomponent]]`` (or ``SEG-field``) in the first SEG."""
        name, numbers = parse_path(path)
        seg = self.segment(name)
        return seg.value(*numbers) if seg is not None else ""


def parse_path(path: str) -> tuple[str, tuple[int, ...]]:
    """Split ``"SPM.2.1"`` / ``"OBR-3"`` into ``("SPM", (2, 1))``; raises ValueError when malformed."""
    parts = path.replace("-", ".").split(".")
    if len(parts) < 2 or len(parts) > 4 or len(parts[0]) != 3:
        raise ValueError(f"bad HL7 field path {path!r}: expected SEG.field[.component[.subcomponent]]")
    try:
        numbers = tuple(int(p) for p in parts[1:])
    except ValueError:
        raise ValueError(f"bad HL7 field path {path!r}: field numbers must be integers") from None
    if any(x < 1 for x in numbers):
        raise ValueError(f"bad HL7 field path {path!r}: numbers start at 1")
    return parts[0].upper(), numbers


_LEADING_JUNK = b"\r\n\t \x00"
_BOM = b"\xef\xbb\xbf"


def read_delimiters(raw: bytes) -> Delimiters:
    """The delimiters declared by MSH-1/MSH-2 of ``raw`` (which must start with ``MSH``)."""
    if len(raw) < 4:
        raise ParseError("message too short to hold an MSH segment")
    sep = raw[3:4]
    if sep.isalnum() or sep in (b"\r", b"\n", b" ", b"\t") or sep[0] > 0x7E:
        raise ParseError(f"bad field separator {sep!r} in MSH-1")
    end = len(raw)
    for stop in (sep, b"\r", b"\n"):
        k = raw.find(stop, 4)
        if 0 <= k < end:
            end = k
    enc = raw[4:end].decode("latin-1")
    if len(enc) == 5:  # HL7 v2.7 truncation character: not used by this parser
        enc = enc[:4]
    field = sep.decode("ascii")
    if (
        not 1 <= len(enc) <= 4
        or len(set(enc)) != len(enc)
        or field in enc
        or any(c.isalnum() or c.isspace() or ord(c) > 0x7E for c in enc)
    ):
        raise ParseError(f"bad encoding characters {enc!r} in MSH-2")
    enc = enc + "\x00" * (4 - len(enc))
    comp, rep, esc, sub = (c if c != "\x00" else "" for c in enc)
    return Delimiters(field, comp, rep, esc, sub)


def declared_charset(raw: bytes, d: Delimiters) -> str:
    """MSH-18 (first repetition, first component) read from the bytes before decoding."""
    end = len(raw)
    for stop in (b"\r", b"\n"):
        k = raw.find(stop)
        if 0 <= k < end:
            end = k
    parts = raw[:end].split(d.field.encode("ascii"))
    if len(parts) < 18:
        return ""
    value = parts[17].decode("latin-1")
    if d.repetition:
        value = value.split(d.repetition, 1)[0]
    return value.split(d.component, 1)[0].strip() if d.component else value.strip()


def _strip_start(raw: bytes) -> bytes:
    if raw.startswith(_BOM):
        raw = raw[3:]
    raw = raw.lstrip(_LEADING_JUNK)
    if raw.startswith(b"MSH"):
        return raw
    if not raw:
        raise ParseError("empty message")
    head = raw[:3]
    if head in (b"FHS", b"BHS"):
        raise ParseError("HL7 batch (FHS/BHS) is not supported: send one message per MLLP block")
    if b"MSH" in raw:
        raise ParseError("data before the MSH segment: the message must start with MSH")
    raise ParseError("no MSH segment: not an HL7 v2 message")


def decode_text(raw: bytes, d: Delimiters, encoding: str | None, trust_msh18: bool) -> tuple[str, str, list[str]]:
    """Decode ``raw`` with MSH-18's codec, then the caller's, then UTF-8, then latin-1; note each fallback."""
    warnings: list[str] = []
    msh18 = declared_charset(raw, d)
    declared = codec_for_charset(msh18) if msh18 else None
    if msh18 and declared is None:
        warnings.append(f"unknown character set {msh18!r} in MSH-18")
    candidates = [declared, encoding] if trust_msh18 else [encoding, declared]
    first = next((c for c in candidates if c), None)
    tried: list[str] = []
    for codec in (*candidates, "utf-8", "latin-1"):
        if not codec or codec in tried:
            continue
        tried.append(codec)
        try:
            text = raw.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if first is not None and codec != first:
            warnings.append(f"text is not valid {first}: decoded as {codec}")
        elif first is None and codec != "utf-8":
            warnings.append(f"no character set given and not UTF-8: decoded as {codec}")
        return text, codec, warnings
    raise ParseError("cannot decode the message text")  # pragma: no cover - latin-1 always decodes


def parse_message(raw: bytes | str, encoding: str | None = None, *, trust_msh18: bool = True) -> Message:
    """Parse one HL7 v2 message.

    ``encoding`` is the per-instrument fallback codec used when MSH-18 is empty, unknown or wrong (bytes that
    do not decode); with ``trust_msh18=False`` it is tried before MSH-18. Raises :class:`ParseError`.
    """
    if isinstance(raw, str):  # already text: keep it exactly (UTF-8 round trip)
        raw, encoding, trust_msh18 = raw.encode("utf-8"), "utf-8", False
    data = _strip_start(raw)
    d = read_delimiters(data)
    text, codec, warnings = decode_text(data, d, encoding, trust_msh18)
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    sep = d.field
    segments: list[Segment] = []
    for line in text.split("\r"):
        if not line:
            continue
        fields = line.split(sep)
        name = fields[0]
        if name == "MSH":
            fields.insert(1, sep)
        elif len(name) != 3 or not name.isalnum():
            if not line.strip():
                continue
            warnings.append(f"segment {len(segments) + 1} has a bad name {name[:10]!r}")
        segments.append(Segment(name, fields, d, codec))
    if not segments or segments[0].name != "MSH":  # pragma: no cover - guaranteed by _strip_start
        raise ParseError("no MSH segment: not an HL7 v2 message")
    return Message(segments, d, codec, warnings)
