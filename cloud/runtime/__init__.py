"""The cloud runtime: settings -> engine, store, ops service, live fan-out; one for every command.

``cloud serve`` (each API process) and ``cloud ingest`` (each ingest process) build the same
``CloudRuntime`` from the same ``cloud.yaml``. On PostgreSQL, processes share incidents through
the database (situation locks, ``cloud.ops.service``) and the live stream through
``LISTEN``/``NOTIFY`` (``cloud.runtime.postgres``); on SQLite, the embedded one-process default,
the live hub is fed directly. Every process that changes an incident queues its dispatch
deliveries in the same transaction (``cloud.dispatch``); every process may send them.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.base import make_engine
from cloud.db.schema import prepare_schema
from cloud.dispatch.config import DispatchConfig, load_dispatch
from cloud.dispatch.dispatcher import Dispatcher
from cloud.ingest.hooks import EventHook
from cloud.ops.clock import Clock, SystemClock
from cloud.ops.devices import DeviceService
from cloud.ops.live import LiveHub, LiveMessage, LiveType
from cloud.ops.models import IncidentChange
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import OpsService
from cloud.runtime.postgres import PgFanout, PgListener, on_postgres, with_department
from cloud.settings import CloudSettings, mqtt_client_id
from cloud.store import build_store
from cloud.store.base import EventStore
from shared.events import Event

logger = logging.getLogger(__name__)


class Fanout(Protocol):
    """Where a process announces what it stored or changed (its own hub, or every process)."""

    async def publish_events(self, events: Sequence[Event]) -> None: ...

    async def publish_incident(self, change: IncidentChange) -> None: ...


@dataclass
class CloudRuntime:
    settings: CloudSettings
    engine: Engine
    sessions: sessionmaker[Session]
    store: EventStore
    ops: OpsService
    devices: DeviceService
    live: LiveHub
    """This process's subscribers (WebSocket/SSE consoles)."""
    fanout: Fanout
    clock: Clock
    dispatcher: Dispatcher
    """Deliveries of incident changes (dispatch.yaml), queued by whichever process changes."""
    listener: PgListener | None = None

    @property
    def shared(self) -> bool:
        """True on PostgreSQL: several processes may ingest and serve at once."""
        return on_postgres(self.engine)

    @property
    def ingest_steps(self) -> list[EventHook]:
        """Run after a batch is stored, retried until committed, before it is acknowledged."""
        return [self.ops.on_events]

    @property
    def ingest_hooks(self) -> list[EventHook]:
        """Run after the steps; best effort (a failure is logged, the events stay stored)."""
        return [self.fanout.publish_events]

    def listen(self, on_keys: Callable[[], None]) -> PgListener | None:
        """On PostgreSQL, a listener that feeds this process's hub from every process."""
        if not self.shared:
            return None

        def deliver(message: LiveMessage) -> None:
            self.live.fan_out(with_department(message, self.live.device_departments))
            if message.type is LiveType.INCIDENT:
                self.dispatcher.wake()  # another process may have queued deliveries

        self.listener = PgListener(self.engine, deliver, on_keys)
        return self.listener

    async def close(self) -> None:
        await self.store.close()
        self.engine.dispose()


def load_dispatch_config(settings: CloudSettings) -> DispatchConfig:
    """``integrations.dispatch`` of cloud.yaml, or no routes (raises naming file and field)."""
    path = settings.integrations.dispatch
    return load_dispatch(path) if path is not None else DispatchConfig()


def build_runtime(
    settings: CloudSettings,
    *,
    store: EventStore | None = None,
    clock: Clock | None = None,
    dispatch: DispatchConfig | None = None,
) -> CloudRuntime:
    """Engine (schema brought up to date), store, rules, ops service, hub, fan-out, dispatcher.

    The dispatcher's routes are *dispatch*, else ``integrations.dispatch`` of the settings.
    """
    dispatch = dispatch if dispatch is not None else load_dispatch_config(settings)
    engine = make_engine(settings.database_url)
    prepare_schema(engine)
    sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
    rules_path = settings.api.rules_path
    rules = RoutingConfig.from_yaml(rules_path) if rules_path else RoutingConfig.default()
    clock = clock or SystemClock()
    store = store if store is not None else build_store(settings.store)
    hub = LiveHub()
    ops = OpsService(sessions, Router(rules), clock)
    dispatcher = Dispatcher(dispatch, sessions, client_id=mqtt_client_id(settings, "dispatch"))
    dispatcher.attach(ops)
    fanout: Fanout
    if on_postgres(engine):
        fanout = PgFanout(engine)
        ops.add_notifier(PgFanout.notify_in)
    else:
        fanout = hub
        ops.add_listener(hub.publish_incident)
    return CloudRuntime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        store=store,
        ops=ops,
        devices=DeviceService(sessions, clock, store, settings),
        live=hub,
        fanout=fanout,
        clock=clock,
        dispatcher=dispatcher,
    )
