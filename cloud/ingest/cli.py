"""``cityops cloud ingest`` (issue #5)."""

import typer


def ingest() -> None:
    """Subscribe to device events and telemetry and store them (not built yet)."""
    typer.echo("not built yet (issue #5)")
    raise typer.Exit(2)
