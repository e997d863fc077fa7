"""``fedrisk rules …``: the rule library for operators — the shipped pack, checking a pack."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fedrisk.cli.render import console, fail
from fedrisk.models.errors import FedriskError
from fedrisk.models.rules.catalogue import CATALOGUE
from fedrisk.models.rules.pack import DEFAULT_PACK, RulePack, load_rule_pack

app = typer.Typer(
    help="The rule library (规则库): rule packs and their rules.", no_args_is_help=True
)


@app.command("default")
def default_command() -> None:
    """Print the rule pack shipped with fedrisk (copy it to start your own)."""
    text = resources.files("fedrisk.models.rules").joinpath(DEFAULT_PACK).read_text("utf-8")
    typer.echo(text, nl=False)


@app.command("check")
def check_command(
    pack: Annotated[Path, typer.Argument(help="A rule pack file (TOML).")],
) -> None:
    """Validate a rule pack; print its version and every rule as it sets it."""
    try:
        loaded = load_rule_pack(pack)
    except FedriskError as error:
        raise fail(error) from None
    console.print(pack_table(loaded))


def pack_table(pack: RulePack) -> Table:
    """Every rule of a pack: scope, on/off, severity and parameters."""
    table = Table(title=f"rule pack {pack.name} — version {pack.version}")
    for column in ("rule", "scope", "enabled", "severity", "parameters"):
        table.add_column(column, no_wrap=column == "rule")
    for spec in CATALOGUE:
        rule = pack.rules[spec.rule_id]
        params = ", ".join(f"{k} = {v}" for k, v in rule.params.items())
        table.add_row(
            spec.rule_id,
            spec.scope.replace("_", "-"),
            "yes" if rule.enabled else "[dim]no[/]",
            rule.severity or "from kb",
            params,
        )
    return table
