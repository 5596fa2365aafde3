"""One path for every connector type: map records, drop duplicates, write, account for health."""

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloud.connectors.config import Source
from cloud.connectors.health import SourceHealth
from cloud.connectors.mapping import EventMapping, MappingError, map_event, map_telemetry
from cloud.connectors.writer import EventWriter
from shared.events import Event
from shared.telemetry import Telemetry

logger = logging.getLogger(__name__)
_SEEN_LIMIT = 10_000


class RecordError(BaseModel):
    model_config = ConfigDict(frozen=True)
    index: int
    field: str
    reason: str


class IntakeResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    accepted: int
    duplicates: int
    rejected: list[RecordError]
    event_ids: list[str]


@dataclass
class _Batch:
    events: list[Event] = field(default_factory=list)
    telemetry: list[Telemetry] = field(default_factory=list)
    rejected: list[RecordError] = field(default_factory=list)
    duplicates: int = 0


class Intake:
    """Takes a batch of one source's records through mapping into the writer."""

    def __init__(self, source: Source, writer: EventWriter) -> None:
        self.source = source
        self.writer = writer
        self.health = SourceHealth(source.id, source.type, source.virtual_device_id)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _fresh(self, key: str) -> bool:
        """False for a key seen recently (the store would also drop it; this spares the hooks)."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
        return True

    def _map_one(self, record: Any, batch: _Batch) -> None:
        if not isinstance(record, dict):
            raise MappingError("record", "a record must be a JSON object")
        mapping = self.source.mapping
        device_id = self.source.virtual_device_id
        if isinstance(mapping, EventMapping):
            event = map_event(mapping, record, source_id=self.source.id, device_id=device_id)
            if not self._fresh(event.id):
                batch.duplicates += 1
                return
            batch.events.append(event)
            self.health.saw_record_time(event.observed_at)
            return
        item = map_telemetry(mapping, record, device_id=device_id)
        if not self._fresh(f"{item.device_id}|{item.ts.isoformat()}"):
            batch.duplicates += 1
            return
        batch.telemetry.append(item)
        self.health.saw_record_time(item.ts)

    async def ingest(self, records: Sequence[Any]) -> IntakeResult:
        """Map and write *records*; raises only when the writer fails (the caller retries)."""
        batch = _Batch()
        for index, record in enumerate(records):
            try:
                self._map_one(record, batch)
            except MappingError as exc:
                batch.rejected.append(RecordError(index=index, field=exc.field, reason=exc.reason))
        self.health.records_total += len(records)
        self.health.rejected_total += len(batch.rejected)
        self.health.duplicates_total += batch.duplicates
        if batch.rejected:
            first = batch.rejected[0]
            logger.warning(
                "source %s: %d of %d records rejected, first: %s: %s",
                self.source.id,
                len(batch.rejected),
                len(records),
                first.field,
                first.reason,
            )
        try:
            await self.writer.write_events(batch.events)
            await self.writer.write_telemetry(batch.telemetry)
        except Exception as exc:
            # Not written: forget them so the source's retry is not taken for a duplicate.
            for event in batch.events:
                self._seen.pop(event.id, None)
            for item in batch.telemetry:
                self._seen.pop(f"{item.device_id}|{item.ts.isoformat()}", None)
            self.health.error(f"store: {exc}")
            raise
        self.health.events_total += len(batch.events)
        self.health.telemetry_total += len(batch.telemetry)
        if records and len(batch.rejected) == len(records):
            self.health.error(f"all {len(records)} records rejected: {batch.rejected[0].field}")
        else:
            self.health.success()
        return IntakeResult(
            accepted=len(batch.events) + len(batch.telemetry),
            duplicates=batch.duplicates,
            rejected=batch.rejected,
            event_ids=[e.id for e in batch.events],
        )
