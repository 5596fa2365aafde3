"""``cityops edge replay`` (issue #3)."""

import typer


def replay() -> None:
    """Run the detection pipeline on a video file as fast as possible (not built yet)."""
    typer.echo("not built yet (issue #3)")
    raise typer.Exit(2)
