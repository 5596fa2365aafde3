"""Wiring of the integration hub into the operations API (``cityops cloud serve``).

    integrations = Integrations.from_files(sources_path)
    app = create_app(settings, extra_routers=build_integration_routers(integrations))
    integrations.attach(app)

``attach`` takes the app's cloud runtime (``app.state.ctx.runtime``), makes connector records
flow like MQTT events (store → incidents → live stream) and runs the pollers, bridges and file
watchers inside the app's lifespan. Dispatch of incidents is the runtime's own
(``CloudRuntime.dispatcher``): every API and ingest process queues and sends deliveries; here
only its routes (``/api/v1/dispatch/...``) are mounted.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from cloud.connectors.config import SourcesConfig, load_sources
from cloud.connectors.hub import ConnectorHub
from cloud.connectors.routes import build_connector_router
from cloud.connectors.writer import EventWriter, StoreEventWriter
from cloud.dispatch.dispatcher import Dispatcher
from cloud.dispatch.routes import build_dispatch_router
from cloud.ingest.hooks import EventHook
from cloud.ngsi.routes import build_ngsi_router
from cloud.runtime.postgres import Leadership
from cloud.store.base import StoreUnavailableError
from shared.events import Event
from shared.telemetry import Telemetry

logger = logging.getLogger(__name__)


class DeferredWriter:
    """The writer of connectors built before the app: bound to the store by ``attach``."""

    def __init__(self) -> None:
        self.target: EventWriter | None = None

    def _bound(self) -> EventWriter:
        if self.target is None:
            raise StoreUnavailableError("integrations are not attached to the app yet")
        return self.target

    async def write_events(self, events: Sequence[Event]) -> None:
        await self._bound().write_events(events)

    async def write_telemetry(self, items: Sequence[Telemetry]) -> None:
        await self._bound().write_telemetry(items)


class Integrations:
    def __init__(self, sources: SourcesConfig | None = None) -> None:
        self.sources = sources or SourcesConfig()
        self.writer = DeferredWriter()
        self.hub = ConnectorHub(self.sources, self.writer)
        self.dispatcher: Dispatcher | None = None
        self.leadership: Leadership | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_files(cls, sources_path: Path | None = None) -> "Integrations":
        """Load ``sources.yaml`` (no connectors when absent)."""
        return cls(load_sources(sources_path) if sources_path else None)

    def current_dispatcher(self) -> Dispatcher:
        if self.dispatcher is None:
            raise StoreUnavailableError("integrations are not attached to the app yet")
        return self.dispatcher

    def attach(self, app: FastAPI, *, extra_hooks: Sequence[EventHook] = ()) -> None:
        """Bind to the app's runtime (store, incidents, live fan-out); run with its lifespan."""
        state = app.state
        runtime = state.ctx.runtime
        hooks: list[EventHook] = [*runtime.ingest_steps, *runtime.ingest_hooks, *extra_hooks]
        self.writer.target = StoreEventWriter(runtime.store, hooks)
        self.dispatcher = runtime.dispatcher
        self.leadership = Leadership(runtime.engine, "connectors")
        state.integrations = self
        if hasattr(state, "metrics"):  # the API's ApiMetrics: source health on /metrics
            state.metrics.watch_connectors(self.hub.health)
        inner: Callable[[Any], Any] = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(running: FastAPI) -> AsyncIterator[Any]:
            async with inner(running) as value:
                await self.start()
                try:
                    yield value
                finally:
                    await self.stop()

        app.router.lifespan_context = lifespan

    async def start(self) -> None:
        """Serve the inbound sources here; run the pulling ones in one process of all.

        Under ``cloud serve --workers N`` on PostgreSQL, the process holding the connectors'
        lock (``Leadership``) polls, bridges and watches; the others take over if it goes.
        """
        logger.info("integrations: %d sources", len(self.hub.intakes))
        if self.leadership is None or not self.hub.pulling:
            return
        self._stop.clear()
        self._task = asyncio.create_task(
            self.leadership.run(self._stop, self.hub.start, self.hub.stop), name="connectors"
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None


def build_integration_routers(
    integrations: Integrations, *, protect: bool = True
) -> list[APIRouter]:
    """The routers of issue #9, for ``create_app(settings, extra_routers=...)``.

    - ``POST /api/v1/connectors/{id}/webhook``: signed by the source's own secret, no API key;
    - ``GET /api/v1/connectors/sources``: source health (API key with ``integration`` permission);
    - ``GET /api/v1/dispatch/deliveries[/{id}]``, ``POST .../{id}/retry``: dispatch status and
      dead letters (``integration`` permission);
    - ``GET /ngsi-ld/v1/entities[/{id}]``: Alert and Device (``events:read`` + ``devices:read``);
    - ``POST /ngsi-ld/v1/notify/{id}``: context-broker notifications (the source's token).

    ``protect=False`` leaves out the API-key checks (tests of these routers on their own).
    """
    integration: list[Any] = []
    readers: list[Any] = []
    if protect:
        from cloud.api.deps import Require
        from cloud.ops.roles import Permission

        integration = [Require(Permission.INTEGRATION)]
        readers = [Require(Permission.EVENTS_READ), Require(Permission.DEVICES_READ)]
    return [
        build_connector_router(integrations.hub, read_dependencies=integration),
        build_dispatch_router(
            integrations.current_dispatcher,
            read_dependencies=integration,
            write_dependencies=integration,
        ),
        build_ngsi_router(hub=integrations.hub, read_dependencies=readers),
    ]
