"""Where mapped records go: the event store, then the hooks (incidents, live stream, dispatch)."""

import logging
from collections.abc import Sequence
from typing import Protocol

from cloud.ingest.hooks import EventHook
from cloud.store.base import EventStore
from shared.events import Event
from shared.telemetry import Telemetry

logger = logging.getLogger(__name__)


class EventWriter(Protocol):
    async def write_events(self, events: Sequence[Event]) -> None: ...

    async def write_telemetry(self, items: Sequence[Telemetry]) -> None: ...


class StoreEventWriter:
    """Stores events like the MQTT ingestor does, then awaits each hook (e.g. ``ops.on_events``).

    A failing hook is logged and does not undo the write, as in ``cloud.ingest.hooks``.
    """

    def __init__(self, store: EventStore, hooks: Sequence[EventHook] = ()) -> None:
        self.store = store
        self.hooks = list(hooks)

    async def write_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        await self.store.write_events(events)
        for hook in self.hooks:
            try:
                await hook(events)
            except Exception:
                logger.exception("event hook %s failed for %d connector events", hook, len(events))

    async def write_telemetry(self, items: Sequence[Telemetry]) -> None:
        if items:
            await self.store.write_telemetry(items)
