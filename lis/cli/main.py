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


@cli.command()
@click.option("--profile", "profile_name", required=True, help="Analyser profile to play (e.g. sysmex-xn, mindray-bs).")
@click.option("--to", "to", default="", help="tcp://HOST:PORT or serial:///dev/ttyX?baud=9600&parity=N...")
@click.option("--listen", default="", help="tcp://HOST:PORT: wait for the LIS to connect (tcp-client instruments).")
@click.option("--count", type=int, default=10, show_default=True, help="Messages to send (0 = until stopped).")
@click.option("--rate", type=float, default=0.0, help="Messages per second (default: back to back).")
@click.option("--file", "capture", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Replay the messages of a capture file instead of generating them.")
@click.option("--faults", default="", help="Comma-separated: bad-checksum,duplicate-frame,drop-ack,garbage,oversize.")
@click.option("--from-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="lis.toml: take specimens and tests from the LIS's pending orders (database).")
@click.option("--from-lis", default="", help="LIS base URL: take the pending orders through the REST API.")
@click.option("--token", default="", envvar="LIS_TOKEN", help="API token for --from-lis.")
@click.option("--instrument", default="", help="Instrument name whose lab code map applies (with --from-config).")
@click.option("--query", is_flag=True, help="Ask the LIS (host query) before running each specimen.")
@click.option("--tests", "tests_per_message", type=int, default=0, help="Results per message (default: varies).")
@click.option("--qc-every", type=int, default=0, help="Every Nth message is a QC sample.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--reply-timeout", type=float, default=15.0, show_default=True, help="ASTM sender timeout (s).")
@click.option("--ack-timeout", type=float, default=10.0, show_default=True, help="HL7: resend after (s).")
@click.option("--max-attempts", type=int, default=0, help="Give a message up after N attempts (0 = never).")
@click.option("--no-pace", is_flag=True, help="Serial: do not pace writes at the line speed.")
@click.option("--quiet", is_flag=True, help="Only print the summary line.")
@click.option("--parent-pid", type=int, default=0, hidden=True, help="Exit when this process is gone.")
@friendly_errors
def simulate(profile_name: str, to: str, listen: str, count: int, rate: float, capture: str | None, faults: str,
             from_config: str | None, from_lis: str, token: str, instrument: str, query: bool,
             tests_per_message: int, qc_every: int, seed: int, reply_timeout: float, ack_timeout: float,
             max_attempts: int, no_pace: bool, quiet: bool, parent_pid: int) -> None:
    """Play an analyser (ASTM or HL7 per the profile) against a LIS; prints JSON lines of what was acknowledged."""
    from drivers.simulator.faults import parse_faults
    from drivers.simulator.runner import SimOptions, run_simulator

    if bool(to) == bool(listen):
        fail("give exactly one of --to and --listen", EXIT_CONFIG)
    options = SimOptions(
        profile=profile_name, to=to, listen=listen, count=count, rate=rate, file=Path(capture) if capture else None,
        faults=parse_faults(faults), from_config=Path(from_config) if from_config else None, from_lis=from_lis,
        token=token, instrument=instrument, query=query, tests_per_message=tests_per_message, qc_every=qc_every,
        seed=seed, reply_timeout=reply_timeout, ack_timeout=ack_timeout, max_attempts=max_attempts,
        pace=not no_pace, quiet=quiet, parent_pid=parent_pid,
    )
    import contextlib

    with contextlib.suppress(KeyboardInterrupt):
        run_simulator(options)


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


def _attach_package_commands() -> None:
    """Commands that live in the other packages (the CLI is the composition root)."""
    from interfaces.cli import attach as attach_interfaces
    from qc.cli import qc as qc_group

    cli.add_command(qc_group, "qc")  # lis qc evaluate
    attach_interfaces(cli)  # lis report verify|pki, lis export xml4, lis emr status|retry


_attach_package_commands()


def main() -> None:
    cli(prog_name="lis")


if __name__ == "__main__":  # pragma: no cover
    main()
