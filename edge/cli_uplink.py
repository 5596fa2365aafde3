"""``cityops edge run`` and ``cityops edge outbox`` (issue #4)."""

import typer


def run() -> None:
    """Run the agent live with its MQTT uplink (not built yet)."""
    typer.echo("not built yet (issue #4)")
    raise typer.Exit(2)


def outbox() -> None:
    """Show the outbox depth, oldest event age and dropped counts (not built yet)."""
    typer.echo("not built yet (issue #4)")
    raise typer.Exit(2)
