"""``create_app(settings)``: the operations API, its background tasks and its shared state.

``app.state`` carries, for extra routers: ``ctx`` (``ApiContext``), ``ops`` (``OpsService``),
``store`` (``EventStore``), ``sessions`` (SQLAlchemy ``sessionmaker``), ``engine``, ``live``
(``LiveHub``), ``settings`` (``ApiSettings``) and ``metrics`` (``ApiMetrics``).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api import openapi as api_openapi
from cloud.api import problems
from cloud.api.context import ApiContext
from cloud.api.metrics import ApiMetrics
from cloud.api.mqtt import ApiMqtt
from cloud.api.routes import devices, events, incidents, live, system
from cloud.api.settings import ApiSettings
from cloud.console.mount import install_console
from cloud.db.base import create_all, make_engine
from cloud.db.devices import Device
from cloud.ops.clock import Clock, SystemClock
from cloud.ops.live import LiveHub
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import OpsService
from cloud.store import build_store
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
    settings: ApiSettings, *, store: EventStore | None = None, clock: Clock | None = None
) -> ApiContext:
    """Engine, tables, store, routing rules, ``OpsService``, live hub, metrics and MQTT."""
    engine = make_engine(settings.cloud.database_url)
    create_all(engine)
    sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
    store = store if store is not None else build_store(settings.cloud.store)
    rules = (
        RoutingConfig.from_yaml(settings.api.rules_path)
        if settings.api.rules_path
        else RoutingConfig.default()
    )
    clock = clock or SystemClock()
    ops = OpsService(sessions, Router(rules), clock)
    hub = LiveHub()
    mqtt = (
        ApiMqtt(settings.api.mqtt or settings.cloud.mqtt, sessions)
        if settings.api.mqtt_enabled
        else None
    )
    metrics = ApiMetrics(hub)
    metrics.watch_state(sessions, clock, settings.api.silent_after_s)
    ops.add_listener(hub.publish_incident)
    ops.add_listener(metrics.on_incident)
    ctx = ApiContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        store=store,
        ops=ops,
        live=hub,
        metrics=metrics,
        mqtt=mqtt,
        clock=clock,
    )
    refresh_device_departments(ctx)
    return ctx


def create_app(
    settings: ApiSettings,
    *,
    extra_routers: Sequence[APIRouter] = (),
    store: EventStore | None = None,
    clock: Clock | None = None,
    ingest: bool = False,
    background: bool = True,
) -> FastAPI:
    """Build the app; *ingest* also runs the Ingestor in-process with the ops and live hooks.

    *background* runs the MQTT connection and the SLA loop in the lifespan (tests that drive
    the SLA with a manual clock turn it off and call ``ops.check_sla()`` themselves).
    """
    ctx = build_context(settings, store=store, clock=clock)
    store, ops, hub, mqtt, metrics, engine = (
        ctx.store,
        ctx.ops,
        ctx.live,
        ctx.mqtt,
        ctx.metrics,
        ctx.engine,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await store.setup()
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if background:
            tasks.append(asyncio.create_task(_sla_loop(ctx, stop)))
            if mqtt is not None:
                tasks.append(asyncio.create_task(mqtt.run(stop)))
        if ingest:
            from cloud.ingest.service import Ingestor

            ingestor = Ingestor(
                settings.cloud, store, engine, hooks=[ops.on_events, hub.publish_events]
            )
            metrics.extra.append(ingestor.registry)
            _app.state.ingestor = ingestor
            tasks.append(asyncio.create_task(ingestor.run(stop)))
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
            await store.close()
            engine.dispose()

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

    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route: Any = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        metrics.latency.labels(template).observe(time.perf_counter() - started)
        return response

    return app


def add_metrics_registry(app: FastAPI, registry: CollectorRegistry) -> None:
    """Render another Prometheus registry (e.g. a separate ingestor's) on ``/metrics``."""
    metrics: ApiMetrics = app.state.metrics
    metrics.extra.append(registry)
