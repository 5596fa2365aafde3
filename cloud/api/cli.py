"""``cityops cloud serve`` and ``cityops cloud keys`` (issue #6)."""

import typer

keys_app = typer.Typer(
    help="Create, list and revoke API keys (not built yet).", no_args_is_help=True
)


@keys_app.command("list")
def list_keys() -> None:
    """List API keys (not built yet)."""
    raise typer.Exit(2)


def serve() -> None:
    """Serve the operations API (not built yet)."""
    typer.echo("not built yet (issue #6)")
    raise typer.Exit(2)
