"""``cityops cloud ingest`` (issue #5)."""

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from cloud.ingest.runner import ClientIdInUseError, configure_logging, run_ingest, with_instance
from cloud.ingest.workers import Supervisor, WorkersRefusedError, worker_specs
from cloud.settings import CloudSettings


def ingest(  # noqa: PLR0917 - a Typer command: one parameter per option
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="The cloud.yaml every cloud command reads (database_url, mqtt, store, ingest, "
            "api); CITYOPS_CLOUD_* env vars work too.",
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
    instance: Annotated[
        int | None,
        typer.Option(
            "--instance",
            "-i",
            min=0,
            max=999,
            help="This process's number among separate ingest processes (systemd "
            "cityops-ingest@N, compose replicas): client id <mqtt.client_id>-iN (workers: "
            "-iN-0, -iN-1 ...), so each keeps its own persistent session.",
        ),
    ] = None,
) -> None:
    """Take events, telemetry, presence and config acks off the broker and store them.

    Subscribes with an MQTT 5 shared subscription (run several ingestors with the same
    ingest.share_group to split the load), validates every message, writes batches to InfluxDB
    or the embedded SQLite store, and acknowledges a message only once its batch is stored.

    Example: cityops cloud ingest --config cloud.yaml --metrics-port 9108

    Example (2 cores): cityops cloud ingest --config cloud.yaml --workers 2

    Every ingest process opens incidents from the events it stores (routing rules from
    api.rules_path), sends their changes where integrations.dispatch says (webhook, e-mail, MQTT
    incident topic) and, on PostgreSQL, announces events and incident changes to every API
    process. A second process with the same MQTT client id is refused at start.
    """
    configure_logging(log_level)
    try:
        settings = CloudSettings.from_yaml(config) if config else CloudSettings()
    except (ValueError, TypeError, OSError) as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    if workers == 1:
        try:
            asyncio.run(run_ingest(with_instance(settings, instance), metrics_host, metrics_port))
        except ClientIdInUseError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        return
    try:
        specs = worker_specs(
            settings, workers, metrics_host, metrics_port, log_level, instance=instance
        )
    except WorkersRefusedError as exc:
        typer.echo(f"--workers {workers}: {exc}", err=True)
        raise typer.Exit(2) from exc
    supervisor = Supervisor(specs)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    raise typer.Exit(supervisor.run())
