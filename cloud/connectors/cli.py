"""``cityops cloud connectors`` (issue #9)."""

import typer

connectors_app = typer.Typer(help="Other city systems in (not built yet).", no_args_is_help=True)


@connectors_app.command("list")
def list_sources() -> None:
    """List configured sources (not built yet)."""
    raise typer.Exit(2)
