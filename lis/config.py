"""Configuration: one TOML file (``lis.toml``), every value overridable by ``LIS_*`` environment variables.

Resolution order (last wins): built-in defaults → the TOML file (``--config FILE`` or ``LIS_CONFIG``) →
environment variables. A scalar ``key`` of table ``section`` is overridden by ``LIS_SECTION_KEY``
(``LIS_WEB_PORT=8081``, ``LIS_DATABASE_URL=...``); top-level scalars by ``LIS_KEY`` (``LIS_DATA_DIR``);
the lists ``instruments`` and ``emr`` by a JSON array in ``LIS_INSTRUMENTS`` / ``LIS_EMR``.

An invalid file produces :class:`ConfigError` whose message names the file and the key, e.g.
``lis.toml: web.port: Input should be a valid integer``; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    name: str = "Open LIS"
    language: Literal["vi", "en"] = "vi"
    timezone: str = DEFAULT_TIMEZONE
    address: str = ""


class DatabaseConfig(_Strict):
    url: str = ""  # empty: sqlite file lis.db in the data dir
    pool_size: int = Field(default=10, ge=1, le=200)
    echo: bool = False


class WebConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret: str = ""  # signs browser sessions; generated into the data dir when empty
    session_minutes: int = Field(default=480, ge=1)
    token_hours: int = Field(default=12, ge=1)


class QcConfig(_Strict):
    """QC service (``[qc]``): how observations group into runs, how often the periodic check runs."""

    run_window_minutes: float = Field(default=30.0, gt=0)
    check_every_seconds: float = Field(default=60.0, gt=0)


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class InstrumentConfig(_Strict):
    """One analyser connection (``[[instruments]]``)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    profile: str = Field(min_length=1)
    protocol: Literal["astm", "hl7"]
    transport: Literal["tcp-server", "tcp-client", "serial"] = "tcp-server"
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    device: str = ""
    baudrate: int = Field(default=9600, gt=0)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 1.5, 2] = 1
    encoding: str | None = None  # overrides the profile's encoding
    model: str = ""
    enabled: bool = True
    max_message_bytes: int = Field(default=16 * 1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _transport_needs(self) -> InstrumentConfig:
        if self.transport in ("tcp-server", "tcp-client") and self.port is None:
            raise ValueError(f"transport {self.transport} needs a port")
        if self.transport == "serial" and not self.device:
            raise ValueError("transport serial needs a device (e.g. /dev/ttyS0)")
        if self.encoding is not None:
            try:
                "".encode(self.encoding)
            except LookupError as exc:
                raise ValueError(f"unknown encoding {self.encoding!r}") from exc
        return self


class EmrConfig(_Strict):
    """One EMR/HIS destination (``[[emr]]``)."""

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["hl7-mllp", "fhir"]
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    base_url: str = ""
    enabled: bool = True
    tls: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    receiving_application: str = "HIS"
    receiving_facility: str = ""
    listen_port: int | None = Field(default=None, ge=1, le=65535)  # orders in (OML/ORM/ADT) over MLLP
    embed_pdf: bool = False  # hl7-mllp: also send the signed PDF report as a last OBX of type ED

    @model_validator(mode="after")
    def _kind_needs(self) -> EmrConfig:
        if self.kind == "hl7-mllp" and self.port is None:
            raise ValueError("kind hl7-mllp needs a port")
        if self.kind == "fhir" and not self.base_url:
            raise ValueError("kind fhir needs base_url")
        return self


class Config(_Strict):
    """The whole configuration (see README "Configuration")."""

    data_dir: Path = Path("lis-data")
    site: SiteConfig = SiteConfig()
    database: DatabaseConfig = DatabaseConfig()
    web: WebConfig = WebConfig()
    logging: LoggingConfig = LoggingConfig()
    qc: QcConfig = QcConfig()
    instruments: list[InstrumentConfig] = []
    emr: list[EmrConfig] = []
    source: str = Field(default="(defaults)", exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, items in (("instruments", self.instruments), ("emr", self.emr)):
            names = [i.name for i in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate name {dupes[0]!r}")
        return self

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'lis.db').resolve()}"

    def instrument(self, name: str) -> InstrumentConfig | None:
        return next((i for i in self.instruments if i.name == name), None)


_SECTIONS = ("site", "database", "web", "logging", "qc")
_LISTS = ("instruments", "emr")


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    """LIS_* variables as a nested dict (values stay text; pydantic converts and validates them)."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("LIS_") or key == "LIS_CONFIG":
            continue
        name = key[4:].lower()
        if name in _LISTS:
            try:
                out[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"environment {key}: not a JSON array: {exc.msg}") from exc
            continue
        if name == "data_dir":
            out["data_dir"] = value
            continue
        for section in _SECTIONS:
            if name.startswith(section + "_"):
                out.setdefault(section, {})[name[len(section) + 1 :]] = value
                break
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{source}: {loc or '(top level)'}: {msg}"


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Load and validate the configuration; raise :class:`ConfigError` naming file and key."""
    env = dict(os.environ) if env is None else env
    raw_path = path or env.get("LIS_CONFIG")
    data: dict[str, Any] = {}
    source = "(defaults)"
    base_dir = Path.cwd()
    if raw_path:
        file = Path(raw_path).expanduser()
        source = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"{source}: configuration file not found") from exc
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
        base_dir = file.resolve().parent
        data.setdefault("data_dir", str(base_dir))
    data = _merge(data, _env_overrides(env))
    try:
        config = Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
    data_dir = config.data_dir.expanduser()
    if not data_dir.is_absolute():
        data_dir = (base_dir / data_dir).resolve()
    return config.model_copy(update={"data_dir": data_dir})


def render_config(config: Config) -> str:
    """A TOML text for ``config`` (used by ``lis demo`` to write the demo's lis.toml)."""
    lines = [f'data_dir = "{config.data_dir.as_posix()}"', ""]
    for section in _SECTIONS:
        lines.append(f"[{section}]")
        for key, value in getattr(config, section).model_dump().items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    for kind in _LISTS:
        for item in getattr(config, kind):
            lines.append(f"[[{kind}]]")
            for key, value in item.model_dump(exclude_defaults=True).items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Path):
        value = value.as_posix()
    return json.dumps(str(value), ensure_ascii=False)
