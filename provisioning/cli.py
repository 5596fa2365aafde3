"""``cityops provision`` (issue #7)."""

import typer

app = typer.Typer(
    help=(
        "Provision, verify and revoke devices; draw zones; balena fleet status.\n\n"
        "Example: cityops provision device --site praca-comercio --lat 38.7075 --lon -9.1365 "
        "--type raspberrypi5 --fleet cityops-cameras"
    ),
    no_args_is_help=True,
)


@app.command("device")
def device() -> None:
    """Provision a device (not built yet)."""
    raise typer.Exit(2)
