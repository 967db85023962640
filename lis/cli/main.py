"""The ``lis`` command: the composition root that wires ``lis`` with ``drivers``, ``interfaces``, ``qc`` and ``web``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from lis.cli.common import (
    EXIT_CONFIG,
    config_hint,
    config_option,
    fail,
    friendly_errors,
    load,
    open_db,
    setup_logging,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="open-lis", prog_name="lis")
def cli() -> None:
    """Open LIS: laboratory information system (analysers, QC, validation, EMR delivery)."""


@cli.command()
@config_option
@click.option("--host", default=None, help="Override web.host.")
@click.option("--port", type=int, default=None, help="Override web.port.")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Start the LIS: web UI, REST API and analyser/EMR connections."""
    from lis.cli.server import serve as run

    config = load(config_path)
    setup_logging(config.logging.level)
    run(config, host=host, port=port, config_hint=config_hint(config_path))


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default="demo-data", show_default=True,
              help="Where the demo keeps its lis.toml, SQLite database and keys.")
@click.option("--port", type=int, default=8080, show_default=True, help="Web port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Web address.")
@click.option("--no-serve", is_flag=True, help="Prepare the demo data and exit.")
def demo(data_dir: str, port: int, host: str, no_serve: bool) -> None:
    """Create (or reuse) a demo lab with SQLite, catalogue, users, patients and orders, and start it."""
    from lis.cli.demo import run_demo

    run_demo(Path(data_dir), host=host, port=port, serve_after=not no_serve)


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@config_option
@friendly_errors
def db_upgrade(config_path: str | None) -> None:
    """Create or update the schema to this version of the LIS."""
    from lis.migrate import upgrade

    config = load(config_path)
    before, after = upgrade(open_db(config))
    click.echo(f"database schema: {before or 'empty'} -> {after}")


@db.command("current")
@config_option
@friendly_errors
def db_current(config_path: str | None) -> None:
    """Show the schema revision of the database and of this LIS."""
    from lis.migrate import current_revision, head_revision

    current = current_revision(open_db(load(config_path)))
    click.echo(f"database: {current or 'empty'}; this LIS: {head_revision()}")


@cli.group()
def user() -> None:
    """User accounts."""


@user.command("add")
@config_option
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(
    ["technician", "validator", "manager", "admin", "clinician", "integration"]))
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--full-name", default="", help="Name shown on reports (with diacritics).")
@click.option("--language", type=click.Choice(["vi", "en"]), default="vi")
@friendly_errors
def user_add(config_path: str | None, username: str, role: str, password: str, full_name: str, language: str) -> None:
    """Create a user with a role."""
    from lis.migrate import require_current
    from lis.services.users import add_user

    config = load(config_path)
    database = open_db(config)
    require_current(database, config_hint(config_path))
    with database.write() as session:
        add_user(session, username, role, password, full_name=full_name, language=language, actor="cli")
    click.echo(f"user {username} created with role {role}")


@cli.group()
def catalog() -> None:
    """Test catalogue."""


@catalog.command("import")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@friendly_errors
def catalog_import(config_path: str | None, file: str) -> None:
    """Import tests (CSV with code,name_en,name_vi,loinc,unit,...), ranges (CSV with test_code,...) or TOML."""
    from lis.migrate import require_current
    from lis.services.catalog import import_catalog, read_catalog_file

    config = load(config_path)
    database = open_db(config)
    require_current(database, config_hint(config_path))
    tests, panels, ranges = read_catalog_file(Path(file))
    with database.write() as session:
        summary = import_catalog(session, tests, panels, ranges, source=Path(file).name, actor="cli")
    click.echo(f"imported {summary.tests} tests, {summary.panels} panels, {summary.ranges} reference ranges")


@cli.group()
def results() -> None:
    """Results."""


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r}: use an ISO date or date-time, e.g. 2026-11-26 or 2026-11-26T08:00", EXIT_CONFIG)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@results.command("export")
@config_option
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--since", default=None, help="Only results received at or after this ISO date/time (UTC).")
@click.option("--status", "statuses", multiple=True, help="Only these workflow states (repeat or comma-separate).")
@click.option("--instrument", default=None)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="File instead of stdout.")
@friendly_errors
def results_export(config_path: str | None, fmt: str, since: str | None, statuses: tuple[str, ...],
                   instrument: str | None, output: str | None) -> None:
    """Export every stored result (matched, unmatched and QC) as JSON or CSV."""
    from lis.migrate import require_current
    from lis.services.results import ResultFilter, iter_export, write_export

    config = load(config_path)
    database = open_db(config)
    require_current(database, config_hint(config_path))
    wanted = [s for item in statuses for s in item.split(",") if s]
    flt = ResultFilter(status=wanted or None, since=_parse_since(since), instrument=instrument)
    with database.read() as session:
        if output:
            with open(output, "w", encoding="utf-8", newline="") as out:
                count = write_export(iter_export(session, flt), fmt, out)
            click.echo(f"{count} results written to {output}", err=True)
        else:
            write_export(iter_export(session, flt), fmt, sys.stdout)


@cli.group()
def audit() -> None:
    """Audit trail."""


@audit.command("verify")
@config_option
@friendly_errors
def audit_verify(config_path: str | None) -> None:
    """Recompute the hash chain; exit 1 and name the first bad event if anything was edited or deleted."""
    from lis.services.audit import verify_chain

    config = load(config_path)
    with open_db(config).read() as session:
        report = verify_chain(session)
    if report.ok:
        click.echo(f"audit trail intact: {report.events} events")
    else:
        fail(f"audit trail broken: {report.reason} (event {report.first_bad_id})")


def _attach_optional_groups() -> None:
    """Commands that live in the other packages (the CLI is the composition root)."""
    try:
        from qc.cli import qc as qc_group
    except ImportError:  # pragma: no cover - qc package without its CLI
        return
    cli.add_command(qc_group, "qc")


_attach_optional_groups()


def main() -> None:
    cli(prog_name="lis")


if __name__ == "__main__":  # pragma: no cover
    main()
