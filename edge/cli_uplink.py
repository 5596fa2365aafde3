"""``cityops edge run`` and ``cityops edge outbox`` (issue #4)."""

import json
import logging
import signal
import sys
import threading
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

logger = logging.getLogger("cityops.edge")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _software() -> str:
    try:
        return f"cityops {version('cityops')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "cityops"


def run(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Agent settings (YAML) with an uplink section.")
    ],
    log_level: Annotated[
        str, typer.Option(help="Log level on stderr: DEBUG, INFO, WARNING, ERROR.")
    ] = "INFO",
) -> None:
    """Run the agent live: cameras -> pipeline -> durable outbox -> MQTT.

    Stops cleanly on SIGTERM or Ctrl-C: drains the outbox for a few seconds, publishes
    'offline', disconnects. Whatever was not sent stays on disk for the next start.
    Exit codes: 0 stopped or input ended, 1 failure, 2 bad configuration.

    Example: cityops edge run --config /data/camera.yaml
    """
    logging.basicConfig(
        stream=sys.stderr,
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from edge.agent import build_agent

    try:
        agent = build_agent(config, software=_software())
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        agent.run(stop)
    except Exception as exc:
        logger.exception("agent failed")
        raise typer.Exit(EXIT_FAILED) from exc


def outbox(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Agent settings (YAML).")
    ] = None,
    path: Annotated[
        Path | None, typer.Option("--path", help="The outbox file itself, instead of --config.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the outbox: depth, oldest message age, dropped and refused counts, dead letters.

    Safe while the agent runs (read-only).

    Example: cityops edge outbox --config /data/camera.yaml
    """
    from edge.agent import resolve_uplink_paths
    from edge.settings import EdgeSettings
    from edge.uplink.outbox import read_dead_letters, read_stats

    if (config is None) == (path is None):
        typer.echo("error: give --config or --path (one of them)", err=True)
        raise typer.Exit(EXIT_CONFIG)
    if config is not None:
        try:
            settings = EdgeSettings.from_yaml(config)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
        if settings.uplink is None:
            typer.echo(f"error: {config}: uplink: no uplink section, so no outbox", err=True)
            raise typer.Exit(EXIT_CONFIG)
        path = resolve_uplink_paths(settings.uplink, settings.base_dir).outbox.path
    assert path is not None  # noqa: S101 - narrowed by the check above
    try:
        stats = read_stats(path)
        dead = read_dead_letters(path)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from exc
    if as_json:
        dead_rows = [asdict(d) for d in dead]
        typer.echo(json.dumps({"path": str(path), **asdict(stats), "dead_letter_rows": dead_rows}))
        return
    age = "-" if stats.oldest_age_s is None else f"{stats.oldest_age_s:.1f} s"
    rows = [
        ("outbox", str(path)),
        ("depth", f"{stats.depth} ({stats.events} events, {stats.telemetry} telemetry)"),
        ("bytes", str(stats.bytes)),
        ("oldest age", age),
        ("dropped events", str(stats.dropped_events)),
        ("dropped telemetry", str(stats.dropped_telemetry)),
        ("refused", str(stats.rejected)),
        ("dead letters", str(stats.dead_letters)),
    ]
    for name, value in rows:
        typer.echo(f"{name:<18} {value}")
    for d in dead:
        # Kept aside, never sent: the broker can never take them (see docs/edge-uplink.md).
        typer.echo(f"  dead letter #{d.seq} {d.kind} id={d.message_id} {d.size} B: {d.reason}")
