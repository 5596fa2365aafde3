"""The live hub: fans new events and incident changes out to WebSocket/SSE subscribers.

Each subscriber has a bounded queue; a console that cannot keep up loses its oldest messages
(counted in ``dropped``) rather than slowing ingest down.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.ops.models import IncidentChange
from cloud.ops.roles import Principal
from shared.clock import utcnow
from shared.events import Event, EventKind, Severity

logger = logging.getLogger(__name__)


class LiveType(StrEnum):
    EVENT = "event"
    INCIDENT = "incident"


class LiveMessage(BaseModel):
    """One message on the live stream (a JSON text frame / an SSE ``data:`` line)."""

    model_config = ConfigDict(frozen=True)
    type: LiveType
    at: datetime
    kind: EventKind
    device_id: str
    severity: Severity
    department: str | None = None
    data: dict[str, Any] = Field(
        description="The event (without snapshot) or the ``IncidentChange``."
    )


class LiveFilter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    types: list[LiveType] = Field(default_factory=list)
    kinds: list[EventKind] = Field(default_factory=list)
    device_ids: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    min_severity: Severity | None = None

    def accepts(self, message: LiveMessage) -> bool:
        checks = (
            not self.types or message.type in self.types,
            not self.kinds or message.kind in self.kinds,
            not self.device_ids or message.device_id in self.device_ids,
            not self.departments or message.department in self.departments,
            self.min_severity is None or message.severity.rank >= self.min_severity.rank,
        )
        return all(checks)


@dataclass(eq=False)
class Subscription:
    principal: Principal
    filter: LiveFilter
    device_departments: dict[str, str | None]
    queue: asyncio.Queue[LiveMessage] = field(default_factory=lambda: asyncio.Queue(1000))
    dropped: int = 0

    def visible(self, message: LiveMessage) -> bool:
        if message.type is LiveType.INCIDENT:
            seen = self.principal.sees(message.department)
        elif message.device_id in self.device_departments:
            seen = self.principal.sees(self.device_departments[message.device_id])
        else:  # a device not (yet) in the registry: its department is unknown
            seen = self.principal.all_departments
        return seen and self.filter.accepts(message)

    def offer(self, message: LiveMessage) -> None:
        if not self.visible(message):
            return
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


def _nothing() -> None:
    pass


def _nothing_of(_: int) -> None:
    pass


class LiveHub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.device_departments: dict[str, str | None] = {}
        """Device id -> department, to scope event messages; refreshed by the API."""
        self.published = 0
        self.on_offer: Callable[[], None] = _nothing
        """Called once per message offered (the API counts them on ``/metrics``)."""
        self.on_subscribers: Callable[[int], None] = _nothing_of
        """Called with the number of subscribers whenever one comes or goes."""

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def subscribe(self, principal: Principal, live_filter: LiveFilter) -> Subscription:
        sub = Subscription(principal, live_filter, self.device_departments)
        self._subs.add(sub)
        self.on_subscribers(len(self._subs))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        self.on_subscribers(len(self._subs))

    def fan_out(self, message: LiveMessage) -> None:
        """Offer *message* to every subscriber of this process."""
        self.published += 1
        self.on_offer()
        for sub in list(self._subs):
            sub.offer(message)

    async def publish_events(self, events: Sequence[Event]) -> None:
        """``EventHook``: announce newly stored events."""
        for event in events:
            self.fan_out(event_message(event, self.device_departments.get(event.device_id)))

    async def publish_incident(self, change: IncidentChange) -> None:
        """``OpsService`` listener: announce an incident change."""
        self.fan_out(incident_message(change))


def event_message(event: Event, department: str | None) -> LiveMessage:
    """The live message of a newly stored event (its snapshot left out, flagged)."""
    return LiveMessage(
        type=LiveType.EVENT,
        at=utcnow(),
        kind=event.kind,
        device_id=event.device_id,
        severity=event.severity,
        department=department,
        data=event.model_copy(update={"snapshot": None}).model_dump(mode="json", exclude_none=True)
        | {"has_snapshot": event.snapshot is not None},
    )


def incident_message(change: IncidentChange) -> LiveMessage:
    """The live message of a committed incident change."""
    return LiveMessage(
        type=LiveType.INCIDENT,
        at=change.at,
        kind=change.incident.kind,
        device_id=change.incident.device_id,
        severity=change.incident.severity,
        department=change.incident.department,
        data=change.model_dump(mode="json"),
    )
