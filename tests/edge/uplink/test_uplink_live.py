"""The uplink against the real Mosquitto: delivery, presence, live config, commands, security."""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from cloud.broker.certs import issue_device_cert, make_ca
from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from edge.uplink.roles import DeviceRoles, PipelineHealth
from edge.uplink.settings import OutboxSettings, TlsSettings, UplinkSettings
from shared.codec import decode, encode
from shared.commands import Command, CommandName
from shared.config import CameraConfig, DeviceConfig, Zone, ZoneKind
from shared.events import Severity
from shared.telemetry import CameraHealth, CameraState, DeviceState, Telemetry
from shared.topics import Channel, subscription, topic
from tests.conftest import Broker, TlsBroker
from tests.edge.uplink.helpers import (
    FakePipeline,
    acks,
    id_counts,
    make_event,
    publish_as_operator,
    real_jpeg,
    recorder,
    statuses,
    uplink_settings,
)

pytestmark = pytest.mark.services


@pytest.fixture
def device(mosquitto: Broker, request: pytest.FixtureRequest) -> str:
    """A device account of its own per test, so retained status/config never leak between tests."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[-40:].strip("-")
    device_id = f"up-{name}"
    mosquitto.add_user(device_id, f"{device_id}-pw")
    return device_id


@pytest.fixture
def running(
    mosquitto: Broker, device: str, tmp_path: Path
) -> Iterator[tuple[MqttUplink, FakePipeline]]:
    pipe = FakePipeline({"cam1"}, real_jpeg(80, 60))
    roles = DeviceRoles(config=pipe, snapshot=pipe, reload=lambda: "reloaded")
    settings = uplink_settings(mosquitto, device, tmp_path / "outbox.db")
    uplink = MqttUplink(settings, device, Outbox(settings.outbox), roles, software="test")
    uplink.start()
    assert uplink.wait_connected(5)
    yield uplink, pipe
    uplink.stop()
    uplink.outbox.close()


def test_events_arrive_once_with_presence_online_then_offline(
    mosquitto: Broker, device: str, tmp_path: Path
) -> None:
    filters = [subscription(Channel.EVENT, device), subscription(Channel.STATUS, device)]
    with recorder(mosquitto, filters, f"rec-{device}") as rec:
        settings = uplink_settings(mosquitto, device, tmp_path / "o.db")
        uplink = MqttUplink(settings, device, Outbox(settings.outbox), software="t")
        uplink.start()
        events = [make_event(device) for _ in range(300)]
        for e in events:
            uplink.emit(e)
        event_topic = topic(device, Channel.EVENT)
        rec.wait_for(lambda: len(rec.payloads(event_topic)) >= 300, 15, "300 events")
        assert uplink.wait_drained(5)
        got = id_counts(rec.payloads(event_topic))
        assert got == {e.id: 1 for e in events}
        # Oldest first: the order of arrival is the order of emit.
        arrived = [decode_id(p) for p in rec.payloads(event_topic)]
        assert arrived == [e.id for e in events]
        assert statuses(rec, device)[0].state is DeviceState.ONLINE
        uplink.stop()
        rec.wait_for(lambda: len(statuses(rec, device)) >= 2, 5, "offline status")
        assert statuses(rec, device)[-1].state is DeviceState.OFFLINE
        uplink.outbox.close()
    # Retained: a newcomer learns the device is offline.
    with recorder(mosquitto, [subscription(Channel.STATUS, device)], f"late-{device}") as late:
        late.wait_for(lambda: bool(statuses(late, device)), 5, "retained status")
        assert statuses(late, device)[0].state is DeviceState.OFFLINE


def decode_id(payload: bytes) -> str:
    from shared.events import Event

    return decode(Event, payload).id


def test_live_config_changes_zones_and_invalid_config_is_refused(
    mosquitto: Broker, device: str, running: tuple[MqttUplink, FakePipeline]
) -> None:
    uplink, pipe = running
    config_topic = topic(device, Channel.CONFIG)
    zone = Zone(id="bay", kind=ZoneKind.NO_PARKING, polygon=[(0.1, 0.6), (0.5, 0.6), (0.5, 1.0)])
    good = DeviceConfig(
        device_id=device, version=7, cameras=[CameraConfig(id="cam1", zones=[zone])]
    )
    filters = [subscription(Channel.CMD_ACK, device), subscription(Channel.STATUS, device)]
    with recorder(mosquitto, filters, f"rec-{device}") as rec:
        publish_as_operator(mosquitto, config_topic, encode(good), retain=True)
        rec.wait_for(lambda: bool(acks(rec, device)), 5, "config ack")
        ack = acks(rec, device)[0]
        assert (ack.name, ack.ok, ack.config_version) == (CommandName.CONFIG, True, 7)
        assert pipe.config is not None
        assert [z.id for z in pipe.config.cameras[0].zones] == ["bay"]
        rec.wait_for(
            lambda: any(s.config_version == 7 for s in statuses(rec, device)), 5, "status v7"
        )

        wrong_camera = good.model_copy(
            update={"version": 8, "cameras": [CameraConfig(id="cam9", zones=[zone])]}
        )
        publish_as_operator(mosquitto, config_topic, encode(wrong_camera), retain=True)
        broken = b'{"device_id": "%s", "version": 9, "cameras": [{"id": "c", "zones": 3}]}' % (
            device.encode()
        )
        publish_as_operator(mosquitto, config_topic, broken, retain=True)
        rec.wait_for(lambda: len(acks(rec, device)) >= 3, 5, "two refusals")
        refused = acks(rec, device)[1:3]
        assert [(a.ok, a.config_version) for a in refused] == [(False, 8), (False, 9)]
        assert "cam9" in refused[0].message
        assert refused[1].message.startswith("cameras.0.zones")
        assert pipe.config_version == 7  # the old config is kept
        assert uplink.connected


def test_snapshot_and_reload_commands_are_acknowledged(
    mosquitto: Broker, device: str, running: tuple[MqttUplink, FakePipeline]
) -> None:
    _, pipe = running
    with recorder(mosquitto, [subscription(Channel.CMD_ACK, device)], f"rec-{device}") as rec:
        for i, name in enumerate((CommandName.SNAPSHOT, CommandName.RELOAD)):
            cmd = Command(
                id=f"cmd-{i}", device_id=device, name=name, issued_at=make_event(device).observed_at
            )
            publish_as_operator(mosquitto, topic(device, Channel.CMD), encode(cmd), retain=False)
        rec.wait_for(lambda: len(acks(rec, device)) >= 2, 5, "two command acks")
        by_id = {a.command_id: a for a in acks(rec, device)}
        snap = by_id["cmd-0"]
        assert snap.ok
        assert snap.snapshot is not None
        assert snap.snapshot.data == pipe.jpeg
        assert (snap.snapshot.width, snap.snapshot.height) == (80, 60)
        assert (by_id["cmd-1"].ok, by_id["cmd-1"].message) == (True, "reloaded")


def test_telemetry_carries_health_outbox_depth_and_camera_state(
    mosquitto: Broker, device: str, tmp_path: Path
) -> None:
    cameras = (
        CameraHealth(camera_id="cam1", state=CameraState.OK, fps=9.5, last_frame_age_s=0.1),
        CameraHealth(camera_id="cam2", state=CameraState.DOWN, last_frame_age_s=42.0),
    )
    roles = DeviceRoles(health=lambda: PipelineHealth(fps=9.5, inference_ms=12.0, cameras=cameras))
    settings = uplink_settings(mosquitto, device, tmp_path / "o.db", telemetry_interval_s=0.3)
    with recorder(mosquitto, [subscription(Channel.TELEMETRY, device)], f"rec-{device}") as rec:
        uplink = MqttUplink(settings, device, Outbox(settings.outbox), roles)
        uplink.start()
        tel_topic = topic(device, Channel.TELEMETRY)
        rec.wait_for(lambda: len(rec.payloads(tel_topic)) >= 2, 5, "telemetry")
        uplink.stop()
        uplink.outbox.close()
    tel = decode(Telemetry, rec.payloads(tel_topic)[-1])
    assert (tel.fps, tel.inference_ms) == (9.5, 12.0)
    assert [c.state for c in tel.cameras] == [CameraState.OK, CameraState.DOWN]
    assert tel.memory_percent is not None
    assert tel.cpu_percent is not None
    assert tel.outbox_depth >= 0
    assert tel.uptime_s > 0


def test_device_cannot_publish_as_another_device(
    mosquitto: Broker, device: str, tmp_path: Path
) -> None:
    """dev-b's valid credentials, dev-a's topics: refused (reason 135), counted, never retried."""
    settings = uplink_settings(mosquitto, "dev-b", tmp_path / "o.db")
    with recorder(mosquitto, [subscription(Channel.EVENT, device)], f"rec-{device}") as rec:
        uplink = MqttUplink(settings, device, Outbox(settings.outbox))
        uplink.start()
        for _ in range(5):
            uplink.emit(make_event(device, Severity.HIGH))
        assert uplink.wait_drained(5)
        time.sleep(0.5)
        assert rec.payloads(topic(device, Channel.EVENT)) == []
        assert uplink.outbox.stats().rejected == 5
        assert uplink.counters().rejected == 5
        uplink.stop()
        uplink.outbox.close()


def test_wrong_password_is_refused_events_wait_and_secret_is_never_logged(
    mosquitto: Broker, device: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-secret-4711"
    settings = uplink_settings(mosquitto, device, tmp_path / "o.db", password=SecretStr(secret))
    caplog.set_level(logging.DEBUG)
    uplink = MqttUplink(settings, device, Outbox(settings.outbox))
    uplink.start()
    for _ in range(3):
        uplink.emit(make_event(device))
    assert not uplink.wait_connected(1.5)
    uplink.stop()
    assert uplink.counters().connects == 0
    assert uplink.outbox.depth == 3
    assert "refused device" in caplog.text
    assert secret not in caplog.text
    assert secret not in repr(settings)
    uplink.outbox.close()


def test_tls_client_certificate_device_delivers_and_unknown_cert_is_refused(
    mosquitto_tls: TlsBroker, tmp_path: Path
) -> None:
    broker = mosquitto_tls.broker
    cert = mosquitto_tls.device_cert("dev-c")
    foreign_ca = make_ca(tmp_path / "foreign")
    foreign = issue_device_cert(foreign_ca, tmp_path / "foreign", "dev-c")

    def settings(cert_file: Path, key_file: Path, name: str) -> UplinkSettings:
        return UplinkSettings(
            host="127.0.0.1",
            port=mosquitto_tls.tls_port,
            tls=TlsSettings(ca_file=mosquitto_tls.ca.cert, cert_file=cert_file, key_file=key_file),
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            outbox=OutboxSettings(path=tmp_path / f"{name}.db"),
        )

    with recorder(broker, [subscription(Channel.EVENT, "dev-c")], "rec-tls") as rec:
        good = MqttUplink(
            settings(cert.cert, cert.key, "good"),
            "dev-c",
            Outbox(settings(cert.cert, cert.key, "good").outbox),
        )
        good.start()
        events = [make_event("dev-c") for _ in range(20)]
        for e in events:
            good.emit(e)
        rec.wait_for(lambda: len(rec.payloads(topic("dev-c", Channel.EVENT))) >= 20, 10, "events")
        assert id_counts(rec.payloads(topic("dev-c", Channel.EVENT))) == {e.id: 1 for e in events}
        good.stop()
        good.outbox.close()

        bad_settings = settings(foreign.cert, foreign.key, "bad")
        bad = MqttUplink(bad_settings, "dev-c", Outbox(bad_settings.outbox))
        bad.start()
        bad.emit(make_event("dev-c"))
        assert not bad.wait_connected(1.5)
        bad.stop()
        assert bad.outbox.depth == 1
        bad.outbox.close()
