"""Command line of the QC engine: the click group ``qc`` with the command ``evaluate``.

The LIS attaches the group to its CLI (``lis qc evaluate ...``); ``python -m qc evaluate ...`` runs it alone.
Exit codes: 0 evaluated (whatever the decisions), 2 bad input or usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from qc.batch import evaluate_csv, format_text
from qc.model import DEFAULT_REJECT_RULES, DEFAULT_WARNING_RULES, QcInputError, RuleSet

DEFAULT_RULES_OPTION = ",".join(("1_2s", *DEFAULT_REJECT_RULES))
DEFAULT_WARNING_OPTION = ",".join(DEFAULT_WARNING_RULES)


@click.group(name="qc", help="Quality control: Westgard multirule evaluation.")
def qc() -> None:
    """QC command group."""


@qc.command(name="evaluate")
@click.argument("input_csv", metavar="INPUT.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--rules",
    "rules",
    default=DEFAULT_RULES_OPTION,
    show_default=True,
    help="Comma-separated rules to evaluate (rejection rules unless also in --warning-rules).",
)
@click.option(
    "--warning-rules",
    "warning_rules",
    default=DEFAULT_WARNING_OPTION,
    show_default=True,
    help="Comma-separated rules that only warn (added to the evaluated set).",
)
@click.option(
    "--reset-on-reject/--no-reset-on-reject",
    default=True,
    show_default=True,
    help="Restart the across-run history after a rejected run.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json is a list of {run, decision, violations} in input order.",
)
def evaluate(input_csv: Path, rules: str, warning_rules: str, reset_on_reject: bool, fmt: str) -> None:
    """Evaluate QC runs in INPUT.csv (columns run,material,lot,value,mean,sd; one row per observation).

    Errors name the CSV line number (the header is line 1) and the 1-based data row.
    """
    try:
        rule_set = RuleSet.from_names(
            rules.split(","), warning_rules.split(","), reset_on_reject=reset_on_reject
        )
        if not rule_set.active:
            raise QcInputError("no rules selected")
        summaries = evaluate_csv(input_csv, rule_set)
    except QcInputError as exc:
        click.echo(f"error: {input_csv}: {exc}", err=True)
        raise SystemExit(2) from None
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"error: cannot read {input_csv}: {exc}", err=True)
        raise SystemExit(2) from None
    if fmt == "json":
        click.echo(json.dumps([s.as_dict() for s in summaries], ensure_ascii=False, indent=1))
    else:
        click.echo(format_text(summaries))
