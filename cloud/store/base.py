"""The ``EventStore`` interface that ingest writes to and the operations API reads from.

Implementations: ``InfluxEventStore`` (InfluxDB v1 HTTP API), ``SqliteEventStore`` (embedded).
Writing the same event id twice must leave one stored event.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from shared.events import Event, EventKind, Severity
from shared.telemetry import Telemetry


class BBox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    min_lat: float = Field(ge=-90, le=90)
    min_lon: float = Field(ge=-180, le=180)
    max_lat: float = Field(ge=-90, le=90)
    max_lon: float = Field(ge=-180, le=180)


class EventQuery(BaseModel):
    """Filters for ``query_events``; results are newest first, paged by an opaque cursor."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    start: datetime | None = None
    end: datetime | None = None
    kinds: list[EventKind] = Field(default_factory=list)
    device_ids: list[str] = Field(default_factory=list)
    zone_ids: list[str] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    bbox: BBox | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = None


class EventPage(BaseModel):
    model_config = ConfigDict(frozen=True)
    items: list[Event]
    next_cursor: str | None = None


class CountBucket(BaseModel):
    """One aggregate row.

    ``key`` is the grouping value (kind, zone, device); ``start`` the interval start, if any.
    """

    model_config = ConfigDict(frozen=True)
    key: str
    start: datetime | None = None
    count: int


@runtime_checkable
class KeepsSourceJson(Protocol):
    """A store that can keep the JSON an event was validated from as its body.

    The ingestor has that text anyway; storing it saves serialising every event again. The
    store decides per event (it must read back as an equal ``Event``).
    """

    async def write_events_with_sources(
        self, events: Sequence[Event], sources: Sequence[bytes]
    ) -> None: ...


class EventStore(Protocol):
    async def setup(self) -> None:
        """Create databases/tables/retention policies; idempotent."""

    async def close(self) -> None: ...

    async def write_events(self, events: Sequence[Event]) -> None:
        """Store *events*; raises ``StoreUnavailableError`` when the backend cannot take them."""

    async def write_telemetry(self, items: Sequence[Telemetry]) -> None: ...

    async def query_events(self, query: EventQuery) -> EventPage: ...

    async def get_event(self, event_id: str) -> Event | None: ...

    async def count_events(
        self,
        query: EventQuery,
        group_by: str,
        interval_s: int | None = None,
    ) -> list[CountBucket]:
        """Counts grouped by ``kind``, ``zone_id`` or ``device_id``, optionally per interval."""

    async def recent_telemetry(self, device_id: str, limit: int = 20) -> list[Telemetry]: ...


class StoreUnavailableError(RuntimeError):
    """The backend is down or refused the write; the caller retries with backoff, never drops."""


class StoreRejectedError(ValueError):
    """The backend refused the data itself (not an outage): retrying the same write cannot help."""
