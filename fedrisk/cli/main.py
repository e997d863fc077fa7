"""The ``fedrisk`` console script."""

from __future__ import annotations

import typer

from fedrisk.cli import audit, bench, data, demo, federation, model, node, rules

app = typer.Typer(
    help="fedrisk: federated risk scoring for medical-insurance fund supervision.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold identifiers: never print them
)
app.add_typer(node.app, name="node")
app.add_typer(data.app, name="data")
app.add_typer(rules.app, name="rules")
app.add_typer(audit.app, name="audit")
app.add_typer(model.app, name="model")
app.add_typer(federation.app, name="federation")
app.add_typer(bench.app, name="bench")
node.app.command("trust")(model.trust_command)
app.command("demo")(demo.demo_command)


if __name__ == "__main__":
    app()
