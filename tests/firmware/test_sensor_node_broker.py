"""The simulated sensor node against the real Mosquitto.

Contract on the wire, offline buffering, retained config, one event per threshold crossing.
"""

import json
from collections.abc import Callable, Iterator

import pytest

from firmware.sensor_node.host.board import Scene
from shared.codec import decode
from shared.commands import CommandAck
from shared.events import Event, EventKind, Phase
from shared.telemetry import DeviceState, DeviceStatus, Telemetry
from tests.conftest import Broker
from tests.firmware.nodes import Collector, sim_node

pytestmark = pytest.mark.services


@pytest.fixture
def collector(mosquitto: Broker, request: pytest.FixtureRequest) -> Iterator[Collector]:
    device = "node-" + str(abs(hash(request.node.name)) % 10**6)
    c = Collector(mosquitto, device)
    yield c
    c.close()


def test_node_publishes_contract_telemetry_and_presence(
    mosquitto: Broker, collector: Collector
) -> None:
    sim = sim_node(mosquitto, collector.device_id, lambda n: Scene(pm25_ugm3=5 + n))
    sim.cycles(4)
    telemetry = [decode(Telemetry, p) for p in collector.wait_for("telemetry", 4)]
    assert [t.readings["pm25_ugm3"] for t in telemetry] == [5.0, 6.0, 7.0, 8.0]
    assert set(telemetry[0].readings) == {
        "pm25_ugm3",
        "temperature_c",
        "humidity_pct",
        "noise_dba",
        "bay_occupied",
    }
    assert all(t.battery_pct == 87.0 and t.outbox_depth == 0 for t in telemetry)
    assert [t.uptime_s for t in telemetry] == [0.0, 10.0, 20.0, 30.0]
    status = decode(DeviceStatus, collector.wait_for("status", 1)[0])
    assert status.state is DeviceState.ONLINE
    sim.mqtt.disconnect()


def test_offline_readings_are_delivered_after_the_broker_returns(
    broker_factory: Callable[[], Broker],
) -> None:
    broker = broker_factory()
    collector = Collector(broker, "node-offline")
    sim = sim_node(broker, "node-offline", lambda n: Scene(pm25_ugm3=n))
    try:
        sim.cycles(3)
        collector.wait_for("telemetry", 3)
        broker.server.stop()
        sim.cycles(6)  # broker away: readings go to the flash ring
        assert len(sim.node.buffer) == 6
        assert not sim.node.connected
        broker.server.start()
        collector.wait_ready()
        sim.cycles(2)
        telemetry = [decode(Telemetry, p) for p in collector.wait_for("telemetry", 11)]
    finally:
        collector.close()
        sim.mqtt.disconnect()
    assert [t.readings["pm25_ugm3"] for t in telemetry] == [float(n) for n in range(11)]
    stamps = [t.ts for t in telemetry]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 11
    assert [t.outbox_depth for t in telemetry[3:9]] == [0, 1, 2, 3, 4, 5]
    assert len(sim.node.buffer) == 0


def test_threshold_crossing_raises_one_event_with_hysteresis(
    mosquitto: Broker, collector: Collector
) -> None:
    series = [10, 20, 40, 55, 30, 36, 28, 40, 24, 12]  # one episode: 40 .. 24
    sim = sim_node(mosquitto, collector.device_id, lambda n: Scene(pm25_ugm3=series[n]))
    sim.cycles(len(series))
    collector.wait_for("telemetry", len(series))
    events = [decode(Event, p) for p in collector.wait_for("event", 2)]
    assert len(collector.on("event")) == 2
    start, end = events
    assert (start.kind, start.phase, end.phase) == (
        EventKind.SENSOR_THRESHOLD,
        Phase.START,
        Phase.END,
    )
    assert start.attributes["value"] == 40.0
    assert end.attributes["value"] == 24.0
    assert end.attributes["peak"] == 55.0
    assert end.attributes["start_id"] == start.id
    assert end.dwell_s == 60.0
    sim.mqtt.disconnect()


def test_retained_config_is_applied_and_acknowledged(
    mosquitto: Broker, collector: Collector
) -> None:
    device = collector.device_id
    config = {
        "v": 1,
        "device_id": device,
        "version": 3,
        "telemetry_interval_s": 120,
        "sensors": {
            "thresholds": [{"id": "loud", "reading": "noise_dba", "level": 70, "clear": 65}]
        },
    }
    collector.client.publish(
        f"cityops/v1/{device}/config", json.dumps(config), qos=1, retain=True
    ).wait_for_publish(5)
    noise = [60.0, 75.0, 68.0, 64.0]
    sim = sim_node(mosquitto, device, lambda n: Scene(noise_dba=noise[n % 4]), rules=[])
    try:
        assert sim.node.connect()
        assert sim.mqtt.wait_msg(5.0)  # the retained config arrives right after SUBACK
        sim.cycles(4)
        acks = [decode(CommandAck, p) for p in collector.wait_for("cmd/ack", 1)]
        events = [decode(Event, p) for p in collector.wait_for("event", 2)]
    finally:
        collector.client.publish(f"cityops/v1/{device}/config", b"", qos=1, retain=True)
        sim.mqtt.disconnect()
    assert [(a.ok, a.config_version) for a in acks] == [(True, 3)]
    assert sim.node.config.interval_s == 120.0
    assert [(e.zone_id, e.phase) for e in events] == [("loud", Phase.START), ("loud", Phase.END)]
    assert sim.node.sleep_ms(sim.clock.now_ms()) == 120_000


def test_bad_config_is_refused_with_the_field(mosquitto: Broker, collector: Collector) -> None:
    device = collector.device_id
    bad = {"v": 1, "device_id": device, "version": 4, "telemetry_interval_s": 0}
    collector.client.publish(
        f"cityops/v1/{device}/config", json.dumps(bad), qos=1, retain=True
    ).wait_for_publish(5)
    sim = sim_node(mosquitto, device)
    try:
        assert sim.node.connect()
        assert sim.mqtt.wait_msg(5.0)
        sim.cycles(1)
        ack = decode(CommandAck, collector.wait_for("cmd/ack", 1)[0])
    finally:
        collector.client.publish(f"cityops/v1/{device}/config", b"", qos=1, retain=True)
        sim.mqtt.disconnect()
    assert not ack.ok
    assert ack.message.startswith("telemetry_interval_s:")
    assert sim.node.config.version == -1
