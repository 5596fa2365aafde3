"""``cityops demo``: the whole city loop in one command (see cityops/demo/)."""

import typer


def demo() -> None:
    """Run the whole loop on real footage: broker, ingest, API, edge agents, live view.

    Example: cityops demo --short
    """
    typer.echo("The demo is not built yet (issue #10).")
    raise typer.Exit(2)
