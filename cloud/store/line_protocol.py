"""InfluxDB line protocol for events and telemetry, and the timestamps that make writes idempotent.

A point is identified by measurement + tag set + timestamp; writing it again overwrites it. The
event timestamp is ``observed_at`` truncated to the millisecond plus a sub-millisecond part taken
from the event id (``id_offset_ns``), so the same event always lands on the same point while two
different events of one series in the same millisecond collide only with probability 1e-6.
The id itself stays a field: never a tag (one series per event would explode cardinality).
"""

import base64
import math
from collections.abc import Iterable

from cloud.store.records import event_body, telemetry_body, to_us
from shared.events import Event
from shared.telemetry import Telemetry

EVENTS = "events"
TELEMETRY = "telemetry"
SNAPSHOT_CHUNK = 60_000
"""InfluxDB keeps string fields up to 64 KiB, so a snapshot is split over several fields."""
SNAPSHOT_FIELDS = 3
"""Enough chunks for ``shared.limits.MAX_SNAPSHOT_BYTES`` (96 KiB, 128 KiB as base64)."""

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_TELEMETRY_FLOATS = (
    "uptime_s",
    "fps",
    "inference_ms",
    "cpu_percent",
    "memory_percent",
    "temperature_c",
    "battery_pct",
)
_TELEMETRY_INTS = ("outbox_depth", "dropped_events", "dropped_telemetry")


def id_offset_ns(event_id: str) -> int:
    """Sub-millisecond nanoseconds derived from the random bits of the event id."""
    return int(event_id[-5:], 16) % 1_000_000  # the low 20 bits of the UUID


def event_time_ns(event: Event) -> int:
    return (to_us(event.observed_at) // 1000) * 1_000_000 + id_offset_ns(event.id)


def tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def float_field(value: float) -> str | None:
    """Float literal, or None for NaN/inf (line protocol has no literal for them)."""
    return repr(float(value)) if math.isfinite(value) else None


def event_line(event: Event) -> str:
    tags = [f"{EVENTS},device={tag(event.device_id)}"]
    if event.camera_id is not None:
        tags.append(f"camera={tag(event.camera_id)}")
    tags.append(f"kind={tag(event.kind.value)}")
    tags.append(f"severity={tag(event.severity.value)}")
    if event.zone_id is not None:
        tags.append(f"zone={tag(event.zone_id)}")
    fields = [
        f"id={string_field(event.id)}",
        f"phase={string_field(event.phase.value)}",
        f"dwell_s={float_field(event.dwell_s) or '0.0'}",
        f"objects={len(event.objects)}i",
        f"body={string_field(event_body(event))}",
    ]
    if event.location is not None:
        fields.append(f"lat={event.location.lat!r}")
        fields.append(f"lon={event.location.lon!r}")
    snap = event.snapshot
    if snap is not None:
        data = base64.b64encode(snap.data).decode()
        fields.append(f"snap_w={snap.width}i")
        fields.append(f"snap_h={snap.height}i")
        chunks = [data[i : i + SNAPSHOT_CHUNK] for i in range(0, len(data), SNAPSHOT_CHUNK)]
        fields.extend(f"snap_{n}={string_field(chunk)}" for n, chunk in enumerate(chunks))
    return f"{','.join(tags)} {','.join(fields)} {event_time_ns(event)}"


def telemetry_line(item: Telemetry) -> str:
    fields = [f"body={string_field(telemetry_body(item))}"]
    for name in _TELEMETRY_FLOATS:
        value = getattr(item, name)
        if value is not None and (text := float_field(value)) is not None:
            fields.append(f"{name}={text}")
    fields.extend(f"{name}={getattr(item, name)}i" for name in _TELEMETRY_INTS)
    for name, reading in item.readings.items():
        if (text := float_field(reading)) is not None:
            fields.append(f"r_{name}={text}")
    return f"{TELEMETRY},device={tag(item.device_id)} {','.join(fields)} {to_us(item.ts) * 1000}"


def lines(rows: Iterable[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()
