"""Declarative field mapping: one source record (a JSON object) → an ``Event`` or ``Telemetry``.

A mapping is configuration, not code. Each target field names where its value comes from in the
record (a dotted path such as ``geo.lat`` or ``items.0.id``), a constant, a lookup table and a
default. See ``docs/integrations.md`` for the YAML form.
"""

import hashlib
import json
import re
import string
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from shared.codec import field_of
from shared.events import Event, EventKind, Location, Phase, Severity
from shared.limits import DEVICE_ID_PATTERN, MAX_ATTRIBUTES, MAX_TEXT
from shared.telemetry import Telemetry

Record = Mapping[str, Any]
_MISSING = object()
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
_SLUG_RE = re.compile(r"[^a-z0-9_-]+")
_MAX_ATTR_TEXT = 256


class MappingError(ValueError):
    """A record could not be mapped; ``field`` names the target field (or ``record``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def lookup(record: Any, path: str) -> Any:
    """Value at dotted *path* (``a.b.0.c``) or ``_MISSING``; list items by integer index."""
    current = record
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def _ref(value: Any) -> Any:
    """Shorthand: a bare string is a path."""
    return {"path": value} if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldRef(_Strict):
    """Where one target value comes from: ``path`` in the record, else ``const``, else ``default``.

    ``map`` translates source values (compared as strings) to target values, e.g. a partner's
    ``"3"`` → ``high``; a value missing from ``map`` falls back to ``default``.
    """

    path: str | None = Field(default=None, description="Dotted path in the record, e.g. geo.lat.")
    const: Any = Field(default=None, description="A fixed value, used when path is unset.")
    map: dict[str, Any] | None = Field(default=None, description="Source value → target value.")
    default: Any = Field(default=None, description="Used when the path is absent or unmapped.")

    def resolve(self, record: Record) -> Any:
        value: Any = _MISSING
        if self.path is not None:
            value = lookup(record, self.path)
        elif self.const is not None:
            value = self.const
        if value is _MISSING or value is None:
            return self.default
        if self.map is not None:
            return self.map.get(_as_key(value), self.default)
        return value


def _as_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


Ref = Annotated[FieldRef, BeforeValidator(_ref)]


class TimeRef(_Strict):
    """A timestamp: ISO 8601, epoch seconds/milliseconds or a ``strptime`` format.

    Times without a zone are read in ``timezone`` (an IANA name such as ``Europe/Lisbon``).
    """

    path: str = Field(description="Dotted path of the timestamp in the record.")
    format: str = Field(
        default="iso8601", description="iso8601, epoch_s, epoch_ms or a strptime format."
    )
    timezone: str = Field(default="UTC", description="Zone of times that carry none.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def parse(self, record: Record, field: str) -> datetime | None:
        raw = lookup(record, self.path)
        if raw is _MISSING or raw in (None, ""):
            return None
        try:
            if self.format in {"epoch_s", "epoch_ms"}:
                seconds = float(raw) / (1000.0 if self.format == "epoch_ms" else 1.0)
                return datetime.fromtimestamp(seconds, UTC)
            text = str(raw)
            if self.format == "iso8601":
                parsed = datetime.fromisoformat(text)
            else:
                parsed = datetime.strptime(text, self.format)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MappingError(field, f"cannot read {str(raw)[:64]!r} as {self.format}") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(self.timezone))
        return parsed.astimezone(UTC)


TimeSpec = Annotated[TimeRef, BeforeValidator(_ref)]


class LocationRef(_Strict):
    """Either ``lat`` + ``lon`` paths, or ``geojson`` (a GeoJSON Point, ``[lon, lat]``)."""

    lat: str | None = None
    lon: str | None = None
    geojson: str | None = None

    def resolve(self, record: Record) -> Location | None:
        if self.geojson is not None:
            point = lookup(record, self.geojson)
            if not isinstance(point, Mapping):
                return None
            coords = point.get("coordinates")
            if point.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2:  # noqa: PLR2004
                raise MappingError("location", "geojson must be a Point with [lon, lat]")
            lon, lat = coords[0], coords[1]
        else:
            lat = lookup(record, self.lat) if self.lat else _MISSING
            lon = lookup(record, self.lon) if self.lon else _MISSING
            if lat in (_MISSING, None, "") or lon in (_MISSING, None, ""):
                return None
        try:
            return Location(lat=float(lat), lon=float(lon))
        except (TypeError, ValueError) as exc:
            raise MappingError("location", f"bad coordinates lat={lat!r} lon={lon!r}") from exc


class EventMapping(_Strict):
    """How a record becomes an ``Event``. Only ``time`` is required."""

    output: Literal["event"] = "event"
    id: Ref | None = Field(default=None, description="Record id; same id → same event id.")
    time: TimeSpec = Field(description="When it was observed.")
    started: TimeSpec | None = Field(default=None, description="When it started (else: time).")
    ended: TimeSpec | None = Field(default=None, description="When it ended (end phase).")
    kind: Ref = Field(default=FieldRef(const=EventKind.EXTERNAL.value))
    severity: Ref = Field(default=FieldRef(const=Severity.MEDIUM.value))
    phase: Ref = Field(default=FieldRef(const=Phase.START.value))
    device: Ref | None = Field(
        default=None, description="Per-record virtual device: slugged and prefixed by the source."
    )
    zone_id: Ref | None = None
    location: LocationRef | None = None
    summary: str | None = Field(default=None, description="Template, e.g. '{station}: {level}'.")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Event attribute name → record path."
    )


class TelemetryMapping(_Strict):
    """How a record becomes ``Telemetry`` of a virtual sensor device."""

    output: Literal["telemetry"]
    time: TimeSpec
    device: Ref | None = None
    readings: dict[str, str] = Field(description="Reading name (e.g. pm25_ugm3) → record path.")
    battery_pct: str | None = None


def _output_of(value: Any) -> str:
    """``output`` picks the mapping type; records become events unless it says telemetry."""
    if isinstance(value, Mapping):
        return str(value.get("output", "event"))
    return str(getattr(value, "output", "event"))


Mapping_ = Annotated[
    Annotated[EventMapping, Tag("event")] | Annotated[TelemetryMapping, Tag("telemetry")],
    Discriminator(_output_of),
]


class _Fields(dict[str, Any]):
    """Template namespace: ``{a.b}`` reads nested paths; missing ones render empty."""

    def __init__(self, record: Record) -> None:
        super().__init__()
        self.record = record

    def __missing__(self, key: str) -> Any:
        value = lookup(self.record, key)
        return "" if value is _MISSING or value is None else value


class _DottedFormatter(string.Formatter):
    def get_field(self, field_name: str, _args: Any, kwargs: Any) -> tuple[Any, str]:
        return kwargs[field_name], field_name


def render(template: str, record: Record) -> str:
    try:
        return _DottedFormatter().vformat(template, (), _Fields(record))
    except (ValueError, IndexError, KeyError) as exc:
        raise MappingError("summary", f"bad template: {exc}") from exc


def record_event_id(source_id: str, record_key: str, at: datetime) -> str:
    """Deterministic UUIDv7: the record's time in the top 48 bits, a hash of source + key after.

    The same source record always maps to the same event id, so re-deliveries are duplicates.
    """
    digest = hashlib.sha256(f"{source_id}\x00{record_key}".encode()).digest()
    ms = max(0, int(at.timestamp() * 1000)) & ((1 << 48) - 1)
    rand_a = int.from_bytes(digest[:2], "big") & 0xFFF
    rand_b = int.from_bytes(digest[2:10], "big") & ((1 << 62) - 1)
    value = ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def content_key(record: Record) -> str:
    """A record's identity when it has no id field: the hash of its canonical JSON."""
    canon = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()


def virtual_device_id(prefix: str, value: Any) -> str:
    """``prefix`` + slug of *value*, valid as a device id (and so as an MQTT topic level)."""
    slug = _SLUG_RE.sub("-", str(value).lower()).strip("-_")
    device_id = f"{prefix}{slug}"[:63].rstrip("-_")
    if not slug or not _DEVICE_RE.match(device_id):
        raise MappingError("device", f"cannot make a device id from {str(value)[:64]!r}")
    return device_id


def _attribute(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_ATTR_TEXT]


def _enum(enum: type[EventKind] | type[Severity] | type[Phase], value: Any, field: str) -> Any:
    try:
        return enum(str(value))
    except ValueError as exc:
        allowed = ", ".join(m.value for m in enum)
        raise MappingError(field, f"{value!r} is not one of {allowed}") from exc


def _device(mapping: EventMapping | TelemetryMapping, record: Record, base: str) -> str:
    if mapping.device is None:
        return base
    value = mapping.device.resolve(record)
    if value is None:
        return base
    return virtual_device_id(f"{base}-", value)


def map_event(mapping: EventMapping, record: Record, *, source_id: str, device_id: str) -> Event:
    """Build the ``Event`` for *record*; raise ``MappingError`` naming the field when it cannot."""
    observed = mapping.time.parse(record, "time")
    if observed is None:
        raise MappingError("time", f"no value at {mapping.time.path!r}")
    started = (mapping.started.parse(record, "started") if mapping.started else None) or observed
    started = min(started, observed)
    phase = _enum(Phase, mapping.phase.resolve(record) or Phase.START.value, "phase")
    ended = mapping.ended.parse(record, "ended") if mapping.ended else None
    if phase is Phase.END and ended is None:
        ended = observed
    raw_id = mapping.id.resolve(record) if mapping.id else None
    key = str(raw_id) if raw_id not in (None, "") else content_key(record)
    attributes: dict[str, str | int | float | bool] = {"source": source_id, "source_record": key}
    for name, path in list(mapping.attributes.items())[: MAX_ATTRIBUTES - len(attributes)]:
        value = lookup(record, path)
        if value is not _MISSING and value is not None:
            attributes[name] = _attribute(value)
    zone = mapping.zone_id.resolve(record) if mapping.zone_id else None
    fields: dict[str, Any] = {
        # The phase is part of the identity: a partner's start and end of one record are two events.
        "id": record_event_id(source_id, f"{key}|{phase.value}", started),
        "device_id": _device(mapping, record, device_id),
        "kind": _enum(EventKind, mapping.kind.resolve(record) or "external", "kind"),
        "phase": phase,
        "severity": _enum(Severity, mapping.severity.resolve(record) or "medium", "severity"),
        "started_at": started,
        "observed_at": observed,
        "ended_at": ended,
        "zone_id": None if zone in (None, "") else str(zone),
        "location": mapping.location.resolve(record) if mapping.location else None,
        "dwell_s": max(0.0, ((ended or observed) - started).total_seconds()),
        "summary": render(mapping.summary, record)[:MAX_TEXT] if mapping.summary else "",
        "attributes": attributes,
    }
    try:
        return Event.model_validate(fields)
    except ValidationError as exc:
        field, reason = field_of(exc)
        raise MappingError(field, reason) from exc


def map_telemetry(mapping: TelemetryMapping, record: Record, *, device_id: str) -> Telemetry:
    ts = mapping.time.parse(record, "time")
    if ts is None:
        raise MappingError("time", f"no value at {mapping.time.path!r}")
    readings: dict[str, float] = {}
    for name, path in mapping.readings.items():
        value = lookup(record, path)
        if value in (_MISSING, None, ""):
            continue
        try:
            readings[name] = float(value)
        except (TypeError, ValueError) as exc:
            raise MappingError(f"readings.{name}", f"{value!r} is not a number") from exc
    battery = lookup(record, mapping.battery_pct) if mapping.battery_pct else None
    fields: dict[str, Any] = {
        "device_id": _device(mapping, record, device_id),
        "ts": ts,
        "readings": readings,
        "battery_pct": None if battery in (_MISSING, None, "") else battery,
    }
    try:
        return Telemetry.model_validate(fields)
    except ValidationError as exc:
        field, reason = field_of(exc)
        raise MappingError(field, reason) from exc
