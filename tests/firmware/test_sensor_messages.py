"""The node's JSON is the shared contract: every message validates with the ``shared/`` models."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.sensor_node import isotime, jsonw, messages, uuid7
from firmware.sensor_node.config import NodeConfig, ThresholdRule
from firmware.sensor_node.thresholds import ThresholdEngine
from shared.codec import decode
from shared.commands import CommandAck, CommandName
from shared.events import Event, EventKind, Phase, Severity
from shared.ids import is_uuid7, uuid7_ms
from shared.telemetry import DeviceState, DeviceStatus, Telemetry
from shared.topics import Channel, parse, topic

NOW_MS = int(datetime.now(UTC).timestamp() * 1000)


@given(st.integers(min_value=0, max_value=253402300799999))
def test_iso_from_ms_equals_datetime(ms: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert isotime.iso_from_ms(ms) == expected.strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


@given(st.integers(min_value=0, max_value=(1 << 48) - 1), st.integers(0, 0xFFF))
def test_uuid7_is_a_contract_uuid7(ms: int, seq: int) -> None:
    value = uuid7.uuid7_from_parts(ms, seq, random.getrandbits(62))
    assert is_uuid7(value)
    assert uuid7_ms(value) == ms == uuid7.uuid7_ms(value)


def test_uuid7_generator_is_monotonic_within_a_millisecond() -> None:
    gen = uuid7.Uuid7Generator(random.Random(1))
    ids = [gen.new(NOW_MS) for _ in range(5000)]  # more than the 12-bit counter holds
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(is_uuid7(i) for i in ids)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(json_values)
def test_jsonw_round_trips_through_json(value: object) -> None:
    assert json.loads(jsonw.dumps(value)) == value  # type: ignore[arg-type]


@given(st.floats(min_value=-1e6, max_value=1e6), st.integers(0, 6))
def test_fixed_is_the_rounded_number(value: float, places: int) -> None:
    text = jsonw.Fixed(value, places).text()
    assert abs(float(text) - value) <= 0.5 * 10**-places + 1e-9
    assert json.loads(text) == float(text)


def test_fixed_refuses_nan() -> None:
    with pytest.raises(ValueError, match="number"):
        jsonw.Fixed(float("nan"))


def test_topics_match_shared_topics() -> None:
    for channel in (Channel.EVENT, Channel.TELEMETRY, Channel.STATUS, Channel.CONFIG):
        built = messages.topic("node-01", channel.value)
        assert built == topic("node-01", channel)
        assert parse(built).channel is channel
    assert messages.topic("node-01", messages.CMD_ACK) == topic("node-01", Channel.CMD_ACK)


readings = st.dictionaries(
    st.from_regex(r"^[a-z][a-z0-9_]{0,20}$", fullmatch=True),
    st.floats(min_value=-1e5, max_value=1e5),
    max_size=32,
)


@given(readings, st.none() | st.floats(-5, 120), st.integers(0, 10**9))
def test_telemetry_validates_as_shared_telemetry(
    values: dict[str, float], battery: float | None, uptime_ms: int
) -> None:
    payload = messages.telemetry(
        "node-01",
        now_ms=NOW_MS,
        uptime_ms=uptime_ms,
        readings=values,
        battery_pct=battery,
        outbox_depth=3,
        dropped_telemetry=2,
        dropped_events=1,
    )
    tel = decode(Telemetry, payload)
    assert tel.device_id == "node-01"
    assert set(tel.readings) == set(values)
    for name, value in values.items():
        assert tel.readings[name] == pytest.approx(value, abs=0.006)
    assert tel.outbox_depth == 3
    assert tel.dropped_events == 1
    assert abs(tel.ts.timestamp() * 1000 - NOW_MS) < 1
    if battery is not None:
        assert tel.battery_pct == pytest.approx(min(max(battery, 0), 100), abs=0.06)


@pytest.mark.parametrize(
    ("direction", "level", "clear", "series"),
    [
        ("above", 35.0, 25.0, [10.0, 36.0, 30.0, 40.0, 24.9]),
        ("below", 20.0, 30.0, [50.0, 19.0, 25.0, 31.0]),
    ],
)
def test_threshold_events_validate_as_shared_events(
    direction: str, level: float, clear: float, series: list[float]
) -> None:
    rule = ThresholdRule("pm25", "pm25_ugm3", level, clear, direction=direction, severity="high")
    config = NodeConfig("node-01", thresholds=[rule], location=(38.7223, -9.1393))
    engine = ThresholdEngine()
    gen = uuid7.Uuid7Generator(random.Random(2))
    events = []
    start = NOW_MS - 60_000
    for i, value in enumerate(series):
        crossings = engine.evaluate([rule], {"pm25_ugm3": value}, start + i * 1000, gen.new)
        events += [decode(Event, messages.threshold_event("node-01", c, config)) for c in crossings]
    assert [e.phase for e in events] == [Phase.START, Phase.END]
    begin, end = events
    assert begin.kind is EventKind.SENSOR_THRESHOLD
    assert begin.severity is Severity.HIGH
    assert begin.zone_id == "pm25"
    assert begin.location is not None
    assert begin.location.lat == pytest.approx(38.7223)
    assert end.started_at == begin.started_at
    assert end.ended_at is not None
    assert end.attributes["start_id"] == begin.id
    assert begin.id != end.id
    assert end.dwell_s == pytest.approx((end.ended_at - begin.started_at).total_seconds())


def test_status_and_config_ack_validate() -> None:
    status = decode(
        DeviceStatus,
        messages.status("node-01", online=False, now_ms=NOW_MS, config_version=4),
    )
    assert status.state is DeviceState.OFFLINE
    assert status.config_version == 4
    fresh = decode(
        DeviceStatus, messages.status("node-01", online=True, now_ms=NOW_MS, config_version=-1)
    )
    assert fresh.config_version is None
    ack = decode(
        CommandAck,
        messages.config_ack("node-01", now_ms=NOW_MS, version=4, ok=False, message="x" * 400),
    )
    assert ack.name is CommandName.CONFIG
    assert not ack.ok
    assert len(ack.message) == 256
