"""``create_app(settings)``: the operations API, its background tasks and its shared state.

``app.state`` carries, for extra routers: ``ctx`` (``ApiContext``), ``ops`` (``OpsService``),
``store`` (``EventStore``), ``sessions`` (SQLAlchemy ``sessionmaker``), ``engine``, ``live``
(``LiveHub``), ``settings`` (``ApiSettings``) and ``metrics`` (``ApiMetrics``).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from cloud.api import openapi as api_openapi
from cloud.api import problems
from cloud.api.context import ApiContext
from cloud.api.metrics import ApiMetrics, RequestMetrics
from cloud.api.mqtt import ApiMqtt
from cloud.api.routes import devices, events, incidents, live, system
from cloud.api.settings import ApiSettings
from cloud.console.mount import install_console
from cloud.db.devices import Device
from cloud.dispatch.config import DispatchConfig
from cloud.ops.clock import Clock
from cloud.runtime import build_runtime
from cloud.settings import mqtt_client_id
from cloud.store.base import EventStore

logger = logging.getLogger(__name__)

DESCRIPTION = """\
The municipal operations center's view of the city: devices and their health, events from the
store, incidents routed to departments with SLAs, a live stream, and device configuration.

Authenticate with `Authorization: Bearer <api key>` (`cityops cloud keys create`). Errors are
`application/problem+json` and name the field in `errors[].field`.
"""


def refresh_device_departments(ctx: ApiContext) -> None:
    with ctx.sessions() as session:
        rows = session.execute(select(Device.id, Device.department)).all()
    ctx.live.device_departments.clear()
    ctx.live.device_departments.update({row[0]: row[1] for row in rows})


async def _sla_loop(ctx: ApiContext, stop: asyncio.Event) -> None:
    interval = ctx.settings.api.sla_check_interval_s
    while not stop.is_set():
        try:
            await ctx.ops.check_sla()
            await asyncio.to_thread(refresh_device_departments, ctx)
        except Exception:
            logger.exception("SLA check failed; retrying in %.0f s", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def build_context(
    settings: ApiSettings,
    *,
    store: EventStore | None = None,
    clock: Clock | None = None,
    dispatch: DispatchConfig | None = None,
) -> ApiContext:
    """The cloud runtime plus what only the API has: metrics, its MQTT client, the key cache."""
    runtime = build_runtime(settings.cloud, store=store, clock=clock, dispatch=dispatch)
    mqtt = None
    if settings.api.mqtt_enabled:
        account = settings.api.mqtt or settings.cloud.mqtt
        client_id = mqtt_client_id(settings.cloud, "api")
        mqtt = ApiMqtt(account.model_copy(update={"client_id": client_id}), runtime.sessions)
    metrics = ApiMetrics(runtime.live)
    metrics.watch_state(runtime.sessions, runtime.clock, settings.api.silent_after_s)
    runtime.ops.add_listener(metrics.on_incident)
    ctx = ApiContext(settings=settings, runtime=runtime, metrics=metrics, mqtt=mqtt)
    runtime.listen(ctx.keys.clear)
    refresh_device_departments(ctx)
    return ctx


def _start_tasks(
    app: FastAPI, ctx: ApiContext, stop: asyncio.Event, *, ingest: bool, background: bool
) -> list[asyncio.Task[None]]:
    """The lifespan's tasks: live listener, SLA loop, dispatch, MQTT client, in-process ingestor."""
    runtime = ctx.runtime
    tasks: list[asyncio.Task[None]] = []
    if runtime.listener is not None:
        tasks.append(asyncio.create_task(runtime.listener.run(stop)))
    tasks.append(asyncio.create_task(runtime.dispatcher.run(stop)))
    if background:
        tasks.append(asyncio.create_task(_sla_loop(ctx, stop)))
        if ctx.mqtt is not None:
            tasks.append(asyncio.create_task(ctx.mqtt.run(stop)))
    if ingest:
        from cloud.ingest.service import Ingestor

        ingestor = Ingestor(
            ctx.settings.cloud,
            ctx.store,
            ctx.engine,
            steps=runtime.ingest_steps,
            hooks=runtime.ingest_hooks,
        )
        ctx.metrics.extra.append(ingestor.registry)
        app.state.ingestor = ingestor
        tasks.append(asyncio.create_task(ingestor.run(stop)))
    return tasks


def create_app(
    settings: ApiSettings,
    *,
    extra_routers: Sequence[APIRouter] = (),
    store: EventStore | None = None,
    clock: Clock | None = None,
    dispatch: DispatchConfig | None = None,
    ingest: bool = False,
    background: bool = True,
) -> FastAPI:
    """Build the app; *ingest* also runs the Ingestor in-process (incident step, live hook).

    *background* runs the MQTT connection and the SLA loop in the lifespan (tests that drive
    the SLA with a manual clock turn it off and call ``ops.check_sla()`` themselves). On
    PostgreSQL the lifespan also listens for other processes' live messages and revocations.
    The dispatch loop (*dispatch*, else ``integrations.dispatch`` of the settings) always runs.
    """
    ctx = build_context(settings, store=store, clock=clock, dispatch=dispatch)
    runtime = ctx.runtime
    store, ops, hub, metrics, engine = ctx.store, ctx.ops, ctx.live, ctx.metrics, ctx.engine

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await store.setup()
        stop = asyncio.Event()
        tasks = _start_tasks(_app, ctx, stop, ingest=ingest, background=background)
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    try:
                        await asyncio.wait_for(task, 10)
                    except TimeoutError:
                        logger.warning("background task %r did not stop in time", task)
            await runtime.close()

    app = FastAPI(
        title="CityOps operations API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "devices", "description": "Registry, health, credentials, config, commands."},
            {"name": "events", "description": "City events from the store."},
            {"name": "incidents", "description": "Department queues and incident lifecycle."},
            {"name": "live", "description": "WebSocket and SSE stream."},
            {"name": "audit", "description": "Who did what, when, from where."},
            {"name": "system", "description": "Health, readiness, metrics."},
        ],
    )
    problems.install(app)
    api_openapi.install(app)
    app.state.ctx = ctx
    app.state.ops = ops
    app.state.store = store
    app.state.sessions = ctx.sessions
    app.state.engine = engine
    app.state.live = hub
    app.state.settings = settings
    app.state.metrics = metrics
    for router in (system.router, devices.router, events.router, incidents.router, live.router):
        app.include_router(router)
    for router in extra_routers:
        app.include_router(router)
    install_console(app)

    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def add_metrics_registry(app: FastAPI, registry: CollectorRegistry) -> None:
    """Render another Prometheus registry (e.g. a separate ingestor's) on ``/metrics``."""
    metrics: ApiMetrics = app.state.metrics
    metrics.extra.append(registry)
