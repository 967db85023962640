"""CLI plumbing: the ``--config`` option, one-line errors, exit codes (2 = configuration, 1 = runtime)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from lis.config import Config, ConfigError, load_config
from lis.db import Database, DatabaseUnavailable

EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def fail(message: str, code: int = EXIT_RUNTIME) -> NoReturn:
    click.echo(f"lis: error: {message}", err=True)
    sys.exit(code)


def config_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), envvar="LIS_CONFIG", default=None,
        help="Path to lis.toml (default: $LIS_CONFIG, else built-in defaults).",
    )(func)


def load(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def open_db(config: Config) -> Database:
    from lis.db import check_connection

    try:
        db = Database.from_url(config.database_url, pool_size=config.database.pool_size, echo=config.database.echo)
        check_connection(db.engine)
    except DatabaseUnavailable as exc:
        fail(str(exc), EXIT_CONFIG if "database.url" in str(exc) else EXIT_RUNTIME)
    return db


def config_hint(config_path: str | None) -> str:
    return f" --config {config_path}" if config_path else ""


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into one line (a traceback is a bug, logged at DEBUG)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except DatabaseUnavailable as exc:
            fail(str(exc))
        except SQLAlchemyError as exc:
            logging.getLogger("lis.cli").debug("database error", exc_info=True)
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            fail(f"database error: {reason}")
        except (ValueError, LookupError, OSError) as exc:
            logging.getLogger("lis.cli").debug("command failed", exc_info=True)
            fail(str(exc))

    return wrapper


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("uvicorn.access", "httpx", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
