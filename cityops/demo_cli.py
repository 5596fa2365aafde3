"""``cityops demo``: the whole city loop in one command."""

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console


def demo(
    short: Annotated[
        bool, typer.Option("--short", help="Two cameras, clips replayed as fast as possible.")
    ] = False,
    store: Annotated[
        str,
        typer.Option(help="Time-series store: 'sqlite' (embedded) or 'influx' (local influxd)."),
    ] = "sqlite",
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the API running afterwards (Ctrl-C to stop).")
    ] = False,
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps its databases, configs and logs.")
    ] = Path(".demo"),
    live: Annotated[
        bool, typer.Option(help="Live terminal view (off: plain progress lines).")
    ] = True,
) -> None:
    """Watch the whole city loop on real footage, in one command.

    Cameras in a street notice a car parked in the disabled bay and a bag left behind, and the
    operations center turns each into an incident for the right municipal service.

    Starts Mosquitto with per-device credentials, the ingestor and the API (embedded SQLite store,
    or --store influx), provisions the camera units, runs their edge agents on real clips through
    the real detector and uplink, shows a live view, then a summary.

    Example: cityops demo --short
    """
    from cityops.demo.runner import DemoOptions, MaterialMissingError, run_demo

    if store not in ("sqlite", "influx"):
        raise typer.BadParameter("store must be 'sqlite' or 'influx'", param_hint="--store")
    kind: Literal["sqlite", "influx"] = "influx" if store == "influx" else "sqlite"
    console = Console()
    opts = DemoOptions(
        workdir=workdir.resolve(),
        short=short,
        store=kind,
        keep=keep,
        live=live and sys.stdout.isatty(),
    )
    try:
        summary = run_demo(opts, console)
    except MaterialMissingError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    if summary.get("leftover_pids"):
        console.print(f"[red]processes left behind: {summary['leftover_pids']}[/]")
        raise typer.Exit(1)
