"""The declarative field mapping: partner records → Event / Telemetry, errors naming the field."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloud.connectors.config import SourcesConfig
from cloud.connectors.mapping import (
    EventMapping,
    MappingError,
    TelemetryMapping,
    lookup,
    map_event,
    map_telemetry,
    record_event_id,
    virtual_device_id,
)
from shared.events import EventKind, Phase, Severity
from shared.ids import is_uuid7, uuid7_ms

NOW = datetime.now(UTC).replace(microsecond=0)

TRAFFIC = EventMapping.model_validate(
    {
        "id": "report.id",
        "time": {"path": "report.reported", "format": "iso8601", "timezone": "Europe/Lisbon"},
        "kind": {
            "path": "report.type",
            "map": {"parking": "illegal_parking"},
            "default": "external",
        },
        "severity": {"path": "report.level", "map": {"1": "low", "2": "medium", "3": "high"}},
        "phase": {"path": "report.status", "map": {"open": "start", "closed": "end"}},
        "location": {"lat": "report.geo.lat", "lon": "report.geo.lon"},
        "zone_id": "report.street_code",
        "summary": "{report.type} at {report.street}",
        "attributes": {"street": "report.street", "lanes": "report.lanes"},
    }
)


def traffic_record(**overrides: Any) -> dict[str, Any]:
    report = {
        "id": "T-1001",
        "type": "parking",
        "level": 3,
        "status": "open",
        "reported": (NOW - timedelta(minutes=5)).isoformat(),
        "geo": {"lat": "38.7223", "lon": -9.1393},
        "street": "Rua Augusta",
        "street_code": "RA-12",
        "lanes": 2,
    }
    report.update(overrides)
    return {"report": report}


def test_map_event_reads_every_mapped_field() -> None:
    event = map_event(TRAFFIC, traffic_record(), source_id="traffic", device_id="ext-traffic")
    assert event.kind is EventKind.ILLEGAL_PARKING
    assert event.severity is Severity.HIGH
    assert event.phase is Phase.START
    assert event.device_id == "ext-traffic"
    assert event.zone_id == "RA-12"
    assert event.location is not None
    assert (event.location.lat, event.location.lon) == (38.7223, -9.1393)
    assert event.summary == "parking at Rua Augusta"
    assert event.attributes["street"] == "Rua Augusta"
    assert event.attributes["lanes"] == 2
    assert event.attributes["source"] == "traffic"
    assert event.attributes["source_record"] == "T-1001"
    assert event.observed_at == NOW - timedelta(minutes=5)
    assert is_uuid7(event.id)


def test_map_event_same_record_gives_same_id_and_end_phase_differs() -> None:
    a = map_event(TRAFFIC, traffic_record(), source_id="traffic", device_id="ext-traffic")
    b = map_event(TRAFFIC, traffic_record(), source_id="traffic", device_id="ext-traffic")
    other_source = map_event(TRAFFIC, traffic_record(), source_id="other", device_id="ext-other")
    end = map_event(
        TRAFFIC, traffic_record(status="closed"), source_id="traffic", device_id="ext-traffic"
    )
    assert a.id == b.id
    assert other_source.id != a.id
    assert end.id != a.id
    assert end.phase is Phase.END
    assert end.ended_at == end.observed_at


def test_record_event_id_is_uuid7_with_record_time() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    value = record_event_id("air", "station-7|start", at)
    assert is_uuid7(value)
    assert uuid7_ms(value) == int(at.timestamp() * 1000)


def test_map_event_without_id_uses_record_content() -> None:
    mapping = EventMapping.model_validate({"time": "ts"})
    record = {"ts": NOW.isoformat(), "what": "bench broken"}
    first = map_event(mapping, record, source_id="s", device_id="ext-s")
    again = map_event(mapping, dict(record), source_id="s", device_id="ext-s")
    changed = map_event(mapping, {**record, "what": "lamp out"}, source_id="s", device_id="ext-s")
    assert first.id == again.id != changed.id
    assert first.kind is EventKind.EXTERNAL


@pytest.mark.parametrize(
    ("fmt", "raw", "expected"),
    [
        ("iso8601", "2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        ("iso8601", "2026-07-01T12:00:00", datetime(2026, 7, 1, 11, 0, tzinfo=UTC)),
        ("epoch_s", 1772366400, datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        ("epoch_ms", "1772366400000", datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        ("%d/%m/%Y %H:%M", "01/03/2026 12:00", datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_time_formats(fmt: str, raw: object, expected: datetime) -> None:
    # Naive times are read in Lisbon: UTC+1 in July (summer time), UTC+0 in March.
    mapping = EventMapping.model_validate(
        {"time": {"path": "t", "format": fmt, "timezone": "Europe/Lisbon"}}
    )
    event = map_event(mapping, {"t": raw}, source_id="s", device_id="ext-s")
    assert event.observed_at == expected


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (traffic_record(reported="yesterday"), "time"),
        ({"report": {"id": 1}}, "time"),
        (traffic_record(type="fire", level=9), "severity"),
        (traffic_record(geo={"lat": "north", "lon": 1}), "location"),
        (traffic_record(reported=(NOW + timedelta(hours=2)).isoformat()), "started_at"),
    ],
)
def test_map_event_errors_name_the_field(record: dict[str, Any], field: str) -> None:
    mapping = TRAFFIC
    if field == "severity":
        mapping = TRAFFIC.model_copy(
            update={"severity": TRAFFIC.severity.model_copy(update={"default": "urgent"})}
        )
    with pytest.raises(MappingError) as err:
        map_event(mapping, record, source_id="traffic", device_id="ext-traffic")
    assert err.value.field == field


def test_geojson_location_and_per_record_device() -> None:
    mapping = EventMapping.model_validate(
        {"time": "when", "location": {"geojson": "where"}, "device": "station"}
    )
    record = {
        "when": NOW.isoformat(),
        "where": {"type": "Point", "coordinates": [-9.14, 38.71]},
        "station": "Av. Liberdade #3",
    }
    event = map_event(mapping, record, source_id="air", device_id="ext-air")
    assert event.location is not None
    assert (event.location.lat, event.location.lon) == (38.71, -9.14)
    assert event.device_id == "ext-air-av-liberdade-3"


def test_virtual_device_id_refuses_empty_slug() -> None:
    with pytest.raises(MappingError):
        virtual_device_id("ext-", "///")


def test_map_telemetry_readings() -> None:
    mapping = TelemetryMapping.model_validate(
        {
            "output": "telemetry",
            "time": {"path": "ts", "format": "epoch_s"},
            "readings": {"pm25_ugm3": "v.pm25", "no2_ugm3": "v.no2"},
        }
    )
    item = map_telemetry(
        mapping, {"ts": NOW.timestamp(), "v": {"pm25": "41.5", "no2": 12}}, device_id="ext-air"
    )
    assert item.readings == {"pm25_ugm3": 41.5, "no2_ugm3": 12.0}
    with pytest.raises(MappingError) as err:
        map_telemetry(mapping, {"ts": NOW.timestamp(), "v": {"pm25": "n/a"}}, device_id="ext-air")
    assert err.value.field == "readings.pm25_ugm3"


def test_lookup_paths() -> None:
    record = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert lookup(record, "a.b.1.c") == 2
    assert lookup(record, "a.b.-1.c") == 2
    assert lookup(record, "a.x") is not None  # the missing marker, not None
    assert lookup(record, "a.b.5.c") is lookup(record, "a.x")


def test_sources_config_refuses_duplicates_and_unknown_types() -> None:
    source = {"id": "a", "type": "file_drop", "directory": "/tmp/x", "mapping": {"time": "t"}}
    with pytest.raises(ValidationError, match="duplicate source id"):
        SourcesConfig.model_validate({"sources": [source, source]})
    with pytest.raises(ValidationError, match="type"):
        SourcesConfig.model_validate({"sources": [{**source, "type": "ftp"}]})
    with pytest.raises(ValidationError, match="since_param"):
        SourcesConfig.model_validate(
            {
                "sources": [
                    {
                        "id": "p",
                        "type": "rest_poll",
                        "url": "http://x",
                        "since_param": "since",
                        "mapping": {"time": "t"},
                    }
                ]
            }
        )


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_value_or_json = st.one_of(
    _json,
    st.sampled_from(
        ["2026-01-01T00:00:00Z", "1700000000", "P1", "parking", "38.7", "-9.1", "open"]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    report=st.dictionaries(
        st.sampled_from(
            ["id", "type", "level", "status", "reported", "geo", "street", "street_code", "lanes"]
        ),
        _value_or_json,
    )
)
def test_map_event_fails_only_with_mapping_error(report: dict[str, Any]) -> None:
    """Whatever a partner sends, mapping yields an Event or a MappingError, never a crash."""
    error: MappingError | None = None
    try:
        event = map_event(TRAFFIC, {"report": report}, source_id="t", device_id="ext-t")
    except MappingError as exc:
        error = exc
    if error is not None:
        assert error.field
    else:
        assert is_uuid7(event.id)
