"""``cityops cloud ingest`` (issue #5)."""

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from cloud.settings import CloudSettings

log = logging.getLogger(__name__)


def ingest(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML CloudSettings file (database_url, mqtt, store, ingest); "
            "CITYOPS_CLOUD_* env vars work too.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus metrics on this port.", min=1),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics endpoint binds to.")
    ] = "127.0.0.1",
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING.")] = "INFO",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            max=64,
            help="Ingestor processes in one share group, one per core (client ids <id>-0, <id>-1"
            "…; metrics on --metrics-port + n); InfluxDB store only.",
        ),
    ] = 1,
) -> None:
    """Take events, telemetry, presence and config acks off the broker and store them.

    Subscribes with an MQTT 5 shared subscription (run several ingestors with the same
    ingest.share_group to split the load), validates every message, writes batches to InfluxDB
    or the embedded SQLite store, and acknowledges a message only once its batch is stored.

    Example: cityops cloud ingest --config cloud.yaml --metrics-port 9108

    Example (2 cores): cityops cloud ingest --config cloud.yaml --workers 2
    """
    configure_logging(log_level)
    try:
        settings = CloudSettings.from_yaml(config) if config else CloudSettings()
    except (ValueError, TypeError) as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    if workers == 1:
        asyncio.run(serve(settings, metrics_host, metrics_port))
        return
    from cloud.ingest.workers import Supervisor, WorkersRefusedError, worker_specs

    try:
        specs = worker_specs(settings, workers, metrics_host, metrics_port, log_level)
    except WorkersRefusedError as exc:
        typer.echo(f"--workers {workers}: {exc}", err=True)
        raise typer.Exit(2) from exc
    supervisor = Supervisor(specs)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    raise typer.Exit(supervisor.run())


def configure_logging(level: str, prefix: str = "") -> None:
    """Log to stderr at *level*; httpx's line per InfluxDB request only at DEBUG."""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
        force=True,
    )
    if level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)


async def serve(settings: CloudSettings, metrics_host: str, metrics_port: int | None) -> None:
    """Run one ingestor until SIGINT/SIGTERM; metrics on *metrics_port* when given."""
    from prometheus_client import start_http_server

    from cloud.db.base import make_engine
    from cloud.ingest.service import Ingestor
    from cloud.store import build_store

    engine = make_engine(settings.database_url)
    store = build_store(settings.store)
    ingestor = Ingestor(settings, store, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if metrics_port is not None:
        start_http_server(metrics_port, metrics_host, registry=ingestor.registry)
        log.info("metrics on http://%s:%d/metrics", metrics_host, metrics_port)
    try:
        await ingestor.run(stop)
    finally:
        await store.close()
        engine.dispose()
        log.info("ingest stopped: %s", ingestor.stats())
