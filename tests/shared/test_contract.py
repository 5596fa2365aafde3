"""The wire contract: round-trips, limits, and errors that name the field."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import Box, DetectedObject, DeviceConfig, Event, EventKind, Phase, Severity, Telemetry
from shared.codec import decode, encode
from shared.errors import ContractError, PayloadTooLargeError
from shared.ids import is_uuid7, new_id, uuid7_ms
from shared.limits import MAX_PAYLOAD_BYTES

NOW = datetime.now(UTC)
unit = st.floats(min_value=0, max_value=1, allow_nan=False)
past = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x = sorted([draw(unit), draw(unit)])
    y = sorted([draw(unit), draw(unit)])
    return Box(x1=x[0], y1=y[0], x2=x[1], y2=y[1])


objects = st.builds(
    DetectedObject,
    label=st.sampled_from(["car", "person", "truck", "static_object"]),
    score=unit,
    box=boxes(),
    track_id=st.one_of(st.none(), st.integers(min_value=0, max_value=2**31)),
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    started = draw(past)
    observed = started + timedelta(seconds=draw(st.floats(min_value=0, max_value=86400)))
    phase = draw(st.sampled_from(Phase))
    return Event(
        id=new_id(),
        device_id=draw(st.from_regex(r"^[a-z0-9][a-z0-9_-]{0,20}$", fullmatch=True)),
        camera_id=draw(st.one_of(st.none(), st.just("cam0"))),
        kind=draw(st.sampled_from(EventKind)),
        phase=phase,
        severity=draw(st.sampled_from(Severity)),
        started_at=started,
        observed_at=observed,
        ended_at=observed if phase is Phase.END else None,
        zone_id=draw(st.one_of(st.none(), st.just("bay-1"))),
        objects=draw(st.lists(objects, max_size=5)),
        dwell_s=draw(st.floats(min_value=0, max_value=1e6)),
        attributes=draw(
            st.dictionaries(
                st.text(min_size=1, max_size=10),
                st.one_of(st.integers(-1000, 1000), st.booleans(), st.text(max_size=20)),
                max_size=4,
            )
        ),
    )


@given(events())
@settings(max_examples=150)
def test_event_round_trips_through_json(event: Event) -> None:
    assert decode(Event, encode(event)) == event


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_random_bytes_raise_contract_error_only(payload: bytes) -> None:
    with pytest.raises(ContractError) as info:
        decode(Event, payload)
    assert info.value.field


def _valid() -> dict[str, object]:
    data: dict[str, object] = json.loads(
        encode(
            Event(
                id=new_id(),
                device_id="cam-1",
                kind=EventKind.ILLEGAL_PARKING,
                started_at=NOW - timedelta(seconds=5),
                observed_at=NOW,
                objects=[
                    DetectedObject(label="car", score=0.5, box=Box(x1=0, y1=0, x2=0.5, y2=0.5))
                ],
            )
        )
    )
    return data


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"device_id": "cam/1"}, "device_id"),
        ({"device_id": "cam+#"}, "device_id"),
        ({"id": "not-a-uuid"}, "id"),
        ({"kind": "alien_landing"}, "kind"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"observed_at": (NOW + timedelta(hours=2)).isoformat()}, "observed_at"),
        ({"observed_at": "2026-01-01T00:00:00"}, "observed_at"),
        (
            {
                "objects": [
                    {"label": "car", "score": 1.5, "box": {"x1": 0, "y1": 0, "x2": 1, "y2": 1}}
                ]
            },
            "objects.0.score",
        ),
        (
            {
                "objects": [
                    {"label": "car", "score": 0.5, "box": {"x1": 0, "y1": 0, "x2": 1.2, "y2": 1}}
                ]
            },
            "objects.0.box.x2",
        ),
        ({"unexpected": 1}, "unexpected"),
        ({"phase": "end"}, "ended_at"),
        ({"v": 2}, "v"),
    ],
)
def test_bad_field_is_named(patch: dict[str, object], field: str) -> None:
    payload = {**_valid(), **patch}
    with pytest.raises(ContractError) as info:
        decode(Event, json.dumps(payload))
    assert info.value.field == field


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLargeError):
        decode(Event, b"{" + b" " * MAX_PAYLOAD_BYTES + b"}")


def test_snapshot_must_be_a_bounded_jpeg() -> None:
    payload = _valid()
    payload["snapshot"] = {"data": "aGVsbG8=", "width": 1, "height": 1}
    with pytest.raises(ContractError) as info:
        decode(Event, json.dumps(payload))
    assert info.value.field == "snapshot.data"


def test_ids_are_time_ordered_uuid7() -> None:
    ids = [new_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(is_uuid7(i) for i in ids)
    assert abs(uuid7_ms(ids[0]) / 1000 - datetime.now(UTC).timestamp()) < 5


def test_device_config_rejects_bad_polygon_and_names_it() -> None:
    raw = {
        "device_id": "cam-1",
        "version": 1,
        "cameras": [
            {
                "id": "cam0",
                "zones": [{"id": "z", "kind": "no_parking", "polygon": [[0, 0], [1, 1]]}],
            }
        ],
    }
    with pytest.raises(ContractError) as info:
        decode(DeviceConfig, json.dumps(raw))
    assert info.value.field == "cameras.0.zones.0.polygon"


def test_telemetry_round_trip() -> None:
    t = Telemetry(device_id="node-1", ts=NOW, readings={"pm25_ugm3": 12.5}, battery_pct=80)
    assert decode(Telemetry, encode(t)) == t
