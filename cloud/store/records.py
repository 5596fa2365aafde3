"""How stores turn events and telemetry into rows/points and back, and the page cursor."""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.events import Event, Snapshot
from shared.telemetry import Telemetry

GROUP_KEYS = frozenset({"kind", "zone_id", "device_id"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def event_body(event: Event) -> str:
    """The event as compact JSON without its snapshot (kept apart, read only by ``get_event``).

    The same text as ``event.model_dump_json(exclude={"snapshot"}, exclude_none=True)``. Without a
    snapshot (nearly every event) ``exclude_none`` already leaves it out, and the model's
    serializer is called directly: no ``exclude`` set to apply, no Python wrapper in between.
    """
    if event.snapshot is None:
        return event.__pydantic_serializer__.to_json(event, exclude_none=True).decode()
    return event.model_dump_json(exclude={"snapshot"}, exclude_none=True)


def event_from_body(body: str | bytes, snapshot: Snapshot | None = None) -> Event:
    event = Event.model_validate_json(body)
    return event if snapshot is None else event.model_copy(update={"snapshot": snapshot})


def telemetry_body(item: Telemetry) -> str:
    return item.model_dump_json(exclude_none=True)


def telemetry_from_body(body: str | bytes) -> Telemetry:
    return Telemetry.model_validate_json(body)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch (exact: no float rounding)."""
    return (value.astimezone(UTC) - _EPOCH) // _ONE_US


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last item of a page: its sort time and id (newest first)."""

    ts: int
    event_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.ts}:{self.event_id}".encode()).decode()

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        error = ValueError(f"cursor: not a cursor of this store ({text[:32]!r})")
        try:
            ts, sep, event_id = base64.urlsafe_b64decode(text.encode()).decode().partition(":")
            value = int(ts)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise error from exc
        if not sep or len(event_id) > 64 or not 0 <= value < 2**63:  # noqa: PLR2004
            raise error
        return cls(ts=value, event_id=event_id)


def check_group_by(group_by: str) -> str:
    if group_by not in GROUP_KEYS:
        raise ValueError(f"group_by: must be one of {sorted(GROUP_KEYS)}, not {group_by!r}")
    return group_by
