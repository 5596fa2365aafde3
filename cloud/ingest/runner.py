"""One ingest process: the cloud runtime, its ingestor, dispatch, metrics.

The ingestor runs the incident step and the live hook; the dispatch loop sends the deliveries
of the incident changes this process makes (and any other process's that are due).
"""

import asyncio
import logging
import signal

from cloud.settings import CloudSettings, mqtt_client_id

log = logging.getLogger(__name__)


class ClientIdInUseError(RuntimeError):
    """Another running process holds this MQTT client id (the message names the fields)."""


def configure_logging(level: str, prefix: str = "") -> None:
    """Log to stderr at *level*; httpx's line per InfluxDB request only at DEBUG."""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
        force=True,
    )
    if level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)


def with_instance(
    settings: CloudSettings, instance: int | None, worker: int | None = None
) -> CloudSettings:
    """*settings* with the ingest client id of that process (``mqtt_client_id``)."""
    client_id = mqtt_client_id(settings, "ingest", instance=instance, worker=worker)
    return settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"client_id": client_id})}
    )


async def run_ingest(settings: CloudSettings, metrics_host: str, metrics_port: int | None) -> None:
    """Run one ingestor until SIGINT/SIGTERM; metrics on *metrics_port* when given.

    Raises ``ClientIdInUseError`` when another process (on the same PostgreSQL) already runs
    with ``settings.mqtt.client_id``.
    """
    from prometheus_client import start_http_server

    from cloud.ingest.service import Ingestor
    from cloud.runtime import build_runtime
    from cloud.runtime.postgres import ClientIdLease

    runtime = build_runtime(settings)
    client_id = settings.mqtt.client_id or mqtt_client_id(settings, "ingest")
    lease = ClientIdLease(runtime.engine, client_id)
    if not await asyncio.to_thread(lease.acquire):
        await runtime.close()
        raise ClientIdInUseError(
            f"mqtt.client_id {client_id!r} is in use by another running ingest process; "
            "give each process its own: `cloud ingest --instance N` (or a distinct mqtt.client_id)"
        )
    ingestor = Ingestor(
        settings,
        runtime.store,
        runtime.engine,
        steps=runtime.ingest_steps,
        hooks=runtime.ingest_hooks,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if metrics_port is not None:
        start_http_server(metrics_port, metrics_host, registry=ingestor.registry)
        log.info("metrics on http://%s:%d/metrics", metrics_host, metrics_port)
    log.info("ingest process with MQTT client id %s", client_id)
    dispatch = asyncio.create_task(runtime.dispatcher.run(stop), name="dispatcher")
    try:
        await ingestor.run(stop)
    finally:
        stop.set()
        await dispatch
        lease.release()
        await runtime.close()
        log.info("ingest stopped: %s", ingestor.stats())
