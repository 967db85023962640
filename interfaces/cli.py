"""CLI commands of the EMR side, attached to ``lis`` by the composition root (``interfaces.cli.attach(cli)``):

* ``lis report verify FILE [--ca PEM]`` — check a signed report (PAdES): intact, covers the file, trusted;
* ``lis report pki --user NAME[=Full Name] ...`` — demo CA and user signing certificates (for ``lis demo``);
* ``lis export xml4 --since DATE [--until DATE] [-o FILE]`` — insurance table XML4 (Decision 130/4750);
* ``lis emr status`` / ``lis emr retry ID`` — outbox counts per destination, retry a dead letter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lis.cli.common import config_hint, config_option, fail, friendly_errors, load, open_db


@click.group()
def report() -> None:
    """Signed laboratory reports (Circular 13/2025/TT-BYT)."""


@report.command("verify")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--ca", "ca_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Trusted CA certificate (PEM/DER); default: <data_dir>/pki/ca.pem when present.")
def report_verify(config_path: str | None, file: str, ca_files: tuple[str, ...]) -> None:
    """Check the digital signature(s) of a report PDF; exit 1 if any is broken or untrusted."""
    from interfaces.signing import VerifyError, pki_dir, verify_pdf

    roots = [Path(p) for p in ca_files]
    if not roots:
        default = pki_dir(load(config_path).data_dir) / "ca.pem"
        if default.exists():
            roots = [default]
    try:
        checks = verify_pdf(Path(file).read_bytes(), roots or None)
    except VerifyError as exc:
        fail(f"{file}: {exc}")
    ok = True
    for check in checks:
        trust = {True: "trusted", False: "NOT TRUSTED", None: "trust not checked (no --ca)"}[check.trusted]
        state = "intact" if check.intact and check.valid else "BROKEN (modified after signing)"
        cover = "covers the whole file" if check.covers_whole_file else "DOES NOT cover the whole file"
        click.echo(f"{check.field}: {state}, {cover}, {trust}; signer: {check.signer}; signed {check.signed_at}")
        ok = ok and check.ok
    if not ok:
        fail(f"{file}: signature check failed")
    click.echo(f"{file}: signature OK")


@report.command("pki")
@config_option
@click.option("--user", "users", multiple=True, required=True, help="username or username=Full Name (repeat).")
def report_pki(config_path: str | None, users: tuple[str, ...]) -> None:
    """Create a demo CA and PKCS#12 signing certificates under <data_dir>/pki (demonstration only)."""
    from interfaces.signing import create_demo_pki

    names = dict(u.split("=", 1) if "=" in u else (u, u) for u in users)
    root = create_demo_pki(load(config_path).data_dir, names)
    click.echo(f"demo PKI in {root}: CA {root / 'ca.pem'}, keys for {', '.join(names)}")


@click.group()
def export() -> None:
    """Exports for other systems."""


@export.command("xml4")
@config_option
@click.option("--since", required=True, help="Results released at or after this date (local time), e.g. 2026-11-01.")
@click.option("--until", default=None, help="...and before this date (local time).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="File instead of stdout.")
@friendly_errors
def export_xml4(config_path: str | None, since: str, until: str | None, output: str | None) -> None:
    """Insurance table XML4 (Decision 130/QĐ-BYT, 4750/QĐ-BYT) for released results."""
    from interfaces.xml4 import Xml4Summary, parse_since, write_xml4, xml4_records
    from lis.migrate import require_current

    config = load(config_path)
    tz = config.site.timezone
    try:
        start = parse_since(since, tz)
        end = parse_since(until, tz) if until else None
    except ValueError:
        fail("--since/--until: use an ISO date or date-time, e.g. 2026-11-01 or 2026-11-01T07:00", 2)
    database = open_db(config)
    require_current(database, config_hint(config_path))
    summary = Xml4Summary()
    with database.read() as session:
        records = xml4_records(session, start, end, timezone=tz, summary=summary)
        if output:
            with open(output, "w", encoding="utf-8") as out:
                count = write_xml4(records, out)
        else:
            count = write_xml4(records, sys.stdout)
    where = f" to {output}" if output else ""
    click.echo(f"{count} XML4 records written{where}; {summary.skipped_no_visit} released results skipped "
               "(no visit code MA_LK)", err=True)


@click.group()
def emr() -> None:
    """EMR/HIS delivery (outbox)."""


@emr.command("status")
@config_option
@friendly_errors
def emr_status(config_path: str | None) -> None:
    """Outbox messages per destination and state."""
    from interfaces.outbox import status_counts

    with open_db(load(config_path)).read() as session:
        counts = status_counts(session)
    if not counts:
        click.echo("outbox empty")
    for dest, states in sorted(counts.items()):
        click.echo(f"{dest}: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))


@emr.command("retry")
@config_option
@click.argument("outbox_id", type=int)
@friendly_errors
def emr_retry(config_path: str | None, outbox_id: int) -> None:
    """Queue a dead letter again (the running server picks it up within its poll interval)."""
    from interfaces.outbox import OutboxRetryError, retry

    try:
        with open_db(load(config_path)).write() as session:
            row = retry(session, outbox_id, "cli")
    except (LookupError, OutboxRetryError) as exc:
        fail(str(exc))
    click.echo(f"outbox message {outbox_id} ({row.destination}) queued again")


def attach(cli: click.Group) -> None:
    """Add ``report``, ``export`` and ``emr`` to the ``lis`` command."""
    cli.add_command(report, "report")
    cli.add_command(export, "export")
    cli.add_command(emr, "emr")
