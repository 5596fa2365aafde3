"""InfluxDB line protocol for events and telemetry, and the timestamps that make writes idempotent.

A point is identified by measurement + tag set + timestamp; writing it again overwrites it. The
event timestamp is ``observed_at`` truncated to the millisecond plus a sub-millisecond part taken
from the event id (``id_offset_ns``), so the same event always lands on the same point while two
different events of one series in the same millisecond collide only with probability 1e-6.
The id itself stays a field: never a tag (one series per event would explode cardinality).
"""

import base64
import math
from collections.abc import Hashable, Iterable
from json.encoder import encode_basestring
from typing import Final

from cloud.store.records import event_body, telemetry_body, to_us
from shared.events import Event, Phase, Snapshot
from shared.telemetry import Telemetry

EVENTS = "events"
TELEMETRY = "telemetry"
SNAPSHOT_CHUNK = 60_000
"""InfluxDB keeps string fields up to 64 KiB, so a snapshot is split over several fields."""
SNAPSHOT_FIELDS = 3
"""Enough chunks for ``shared.limits.MAX_SNAPSHOT_BYTES`` (96 KiB, 128 KiB as base64)."""

_SERIES_CACHE_SIZE: Final = 65_536
"""Tag sets remembered (one per device, camera, kind, severity and zone seen); emptied when full."""
_series: dict[tuple[Hashable, ...], str] = {}
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


_PHASES: Final = {phase: string_field(phase.value) for phase in Phase}
"""``phase`` field values, made once."""


SOURCE_BODY_MAX = 16_384
"""Longest source JSON kept as the body as it came; longer ones are serialised compactly."""
_JSON_WHITESPACE = (b"\n", b"\r", b"\t")


def source_body(event: Event, source: bytes) -> str | None:
    """*source* (the JSON *event* was validated from) as the body, or None to serialise.

    Kept only when it reads back as the same event with nothing left out: no snapshot (stored
    apart), short, and on one line without tabs (JSON whitespace outside strings would not survive
    the line protocol's escaping; inside strings JSON escapes them anyway).
    """
    if event.snapshot is not None or len(source) > SOURCE_BODY_MAX:
        return None
    for ws in _JSON_WHITESPACE:
        if ws in source:
            return None
    return source.decode()


def event_line(event: Event, source: bytes | None = None) -> str:
    """One event as a line: the series (tags), fields, then the timestamp.

    Fields: ``id``, ``phase``, ``dwell_s``, ``objects`` (count), ``body`` (the event as JSON,
    see ``records.event_body``), ``lat``/``lon`` with a location, and the snapshot's size and
    base64 chunks. Built with as few steps as possible (it runs for every stored event): the tag
    set is remembered per series, the fields are one f-string. tests/cloud/store/
    test_line_protocol.py keeps the plain field-by-field version this must equal.
    """
    body = source_body(event, source) if source is not None else None
    if body is None:
        body = event_body(event)
    key = (event.device_id, event.camera_id, event.kind, event.severity, event.zone_id)
    head = _series.get(key)
    if head is None:
        head = _series_head(event)
        if len(_series) >= _SERIES_CACHE_SIZE:
            _series.clear()
        _series[key] = head
    dwell = event.dwell_s
    line = (
        f"{head} id={string_field(event.id)},phase={_PHASES.get(event.phase) or _phase(event)},"
        f"dwell_s={repr(float(dwell)) if math.isfinite(dwell) else '0.0'},"
        f"objects={len(event.objects)}i,body={_json_field(body)}"
    )
    location = event.location
    if location is not None:
        line = f"{line},lat={location.lat!r},lon={location.lon!r}"
    if event.snapshot is not None:
        line = f"{line},{_snapshot_fields(event.snapshot)}"
    return f"{line} {event_time_ns(event)}"


def _phase(event: Event) -> str:
    return string_field(event.phase.value)


def _series_head(event: Event) -> str:
    """Measurement and tag set of *event*'s series."""
    head = f"{EVENTS},device={tag(event.device_id)}"
    if event.camera_id is not None:
        head += f",camera={tag(event.camera_id)}"
    head += f",kind={tag(event.kind.value)},severity={tag(event.severity.value)}"
    if event.zone_id is not None:
        head += f",zone={tag(event.zone_id)}"
    return head


def _json_field(text: str) -> str:
    r"""``string_field`` for JSON made by pydantic, in one C call.

    ``json.encoder.encode_basestring`` quotes and escapes ``"`` and ``\`` exactly like
    ``string_field``; it would also escape control characters, but JSON text has none (they are
    escaped inside its strings), so the result is the same.
    """
    return encode_basestring(text)


def _snapshot_fields(snap: Snapshot) -> str:
    data = base64.b64encode(snap.data).decode()
    fields = [f"snap_w={snap.width}i", f"snap_h={snap.height}i"]
    chunks = [data[i : i + SNAPSHOT_CHUNK] for i in range(0, len(data), SNAPSHOT_CHUNK)]
    fields.extend(f"snap_{n}={string_field(chunk)}" for n, chunk in enumerate(chunks))
    return ",".join(fields)


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
