"""The real agent: the real pipeline on real footage, the real uplink, the real Mosquitto."""

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cityops.cli import app
from cityops.paths import REPO_ROOT
from edge.agent import PipelineHandle, build_agent
from shared.codec import decode, encode
from shared.commands import Command, CommandAck, CommandName
from shared.config import CameraConfig, DeviceConfig, Zone, ZoneKind
from shared.events import Event, EventKind
from shared.telemetry import CameraState, DeviceState, Telemetry
from shared.topics import Channel, subscription, topic
from tests.conftest import Broker
from tests.edge.uplink.helpers import acks, make_event, publish_as_operator, recorder, statuses

pytestmark = pytest.mark.services

CLIP = "material:data/parking/car_parks_in_disabled_bay_composed.mp4"
runner = CliRunner()


def write_config(broker: Broker, device: str, directory: Path) -> Path:
    broker.add_user(device, f"{device}-pw")
    doc = {
        "device_id": device,
        "cameras": [{"id": "lot", "source": CLIP, "replay": "realtime", "loop": True}],
        "device_config": {
            "cameras": [
                {
                    "id": "lot",
                    "zones": [
                        {
                            "id": "disabled-bay",
                            "kind": "no_parking",
                            "polygon": [[0.298, 0.823], [0.438, 0.823], [0.438, 1.0]],
                        }
                    ],
                }
            ]
        },
        "uplink": {
            "host": broker.host,
            "port": broker.port,
            "username": device,
            "password": f"{device}-pw",
            "telemetry_interval_s": 0.5,
            "backoff_max_s": 1.0,
            "outbox": {"path": "outbox.db"},
        },
    }
    path = directory / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_config_update_changes_the_running_pipelines_zones(
    mosquitto: Broker, material: Path, tmp_path: Path
) -> None:
    device = "up-agent-live"
    agent = build_agent(write_config(mosquitto, device, tmp_path))
    handle = agent.producer
    assert isinstance(handle, PipelineHandle)
    stop = threading.Event()
    filters = [
        subscription(Channel.STATUS, device),
        subscription(Channel.CMD_ACK, device),
        subscription(Channel.TELEMETRY, device),
    ]
    with recorder(mosquitto, filters, f"rec-{device}") as rec:
        worker = threading.Thread(target=agent.run, args=(stop,))
        worker.start()
        try:
            rec.wait_for(lambda: bool(statuses(rec, device)), 20, "online status")
            assert statuses(rec, device)[0].state is DeviceState.ONLINE

            zone = Zone(
                id="whole-row",
                kind=ZoneKind.NO_PARKING,
                polygon=[(0.0, 0.7), (1.0, 0.7), (1.0, 1.0), (0.0, 1.0)],
                dwell_limit_s=5,
            )
            cfg = DeviceConfig(
                device_id=device,
                version=3,
                cameras=[CameraConfig(id="lot", zones=[zone])],
                telemetry_interval_s=1.0,
            )
            publish_as_operator(mosquitto, topic(device, Channel.CONFIG), encode(cfg), retain=True)
            rec.wait_for(lambda: bool(acks(rec, device)), 10, "config ack")
            assert (acks(rec, device)[0].ok, acks(rec, device)[0].config_version) == (True, 3)
            # Applied by the running loop between frames, without a restart.
            rec.wait_for(lambda: handle.pipeline._config.version == 3, 10, "config applied")
            assert [z.id for z in handle.pipeline._config.cameras[0].zones] == ["whole-row"]

            bad = cfg.model_copy(update={"version": 4, "cameras": [CameraConfig(id="nope")]})
            publish_as_operator(mosquitto, topic(device, Channel.CONFIG), encode(bad), retain=True)
            rec.wait_for(lambda: len(acks(rec, device)) >= 2, 10, "refusal")
            refusal = acks(rec, device)[1]
            assert (refusal.ok, refusal.config_version) == (False, 4)
            assert "nope" in refusal.message
            assert handle.pipeline.config_version == 3

            cmd = Command(
                id="snap-1",
                device_id=device,
                name=CommandName.SNAPSHOT,
                issued_at=make_event(device).observed_at,
            )
            publish_as_operator(mosquitto, topic(device, Channel.CMD), encode(cmd), retain=False)
            rec.wait_for(lambda: len(acks(rec, device)) >= 3, 10, "snapshot ack")
            snap: CommandAck = acks(rec, device)[2]
            assert snap.ok, snap.message
            assert snap.snapshot is not None
            assert snap.snapshot.data.startswith(b"\xff\xd8")
            assert max(snap.snapshot.width, snap.snapshot.height) <= 480

            before_reload = handle.pipeline
            cmd = cmd.model_copy(update={"id": "reload-1", "name": CommandName.RELOAD})
            publish_as_operator(mosquitto, topic(device, Channel.CMD), encode(cmd), retain=False)
            rec.wait_for(lambda: len(acks(rec, device)) >= 4, 20, "reload ack")
            reloaded = acks(rec, device)[3]
            assert (reloaded.command_id, reloaded.ok) == ("reload-1", True), reloaded.message
            assert handle.pipeline is not before_reload  # stages rebuilt from the file
            assert handle.pipeline.config_version == 3  # the cloud's newer zones stay

            tel_topic = topic(device, Channel.TELEMETRY)
            seen = len(rec.payloads(tel_topic))
            rec.wait_for(lambda: len(rec.payloads(tel_topic)) >= seen + 2, 10, "telemetry")
            tel = decode(Telemetry, rec.payloads(tel_topic)[-1])
            assert [c.camera_id for c in tel.cameras] == ["lot"]
            assert tel.cameras[0].state is CameraState.OK
            assert tel.fps is not None
            assert tel.fps > 0
        finally:
            stop.set()
            worker.join(20)
        assert not worker.is_alive()
        rec.wait_for(
            lambda: statuses(rec, device)[-1].state is DeviceState.OFFLINE, 5, "offline status"
        )
        assert statuses(rec, device)[-1].config_version == 3


def test_edge_run_process_stops_cleanly_on_sigterm(
    mosquitto: Broker, material: Path, tmp_path: Path
) -> None:
    device = "up-agent-proc"
    config = write_config(mosquitto, device, tmp_path)
    with recorder(mosquitto, [subscription(Channel.STATUS, device)], f"rec-{device}") as rec:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cityops", "edge", "run", "--config", str(config)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            rec.wait_for(lambda: bool(statuses(rec, device)), 30, "online status")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-3000:]
        rec.wait_for(lambda: statuses(rec, device)[-1].state is DeviceState.OFFLINE, 5, "offline")
    log = err.decode()
    assert "SIGTERM received" in log
    assert f"{device}-pw" not in log  # the password never reaches the log
    assert out == b""  # logs go to stderr only

    result = runner.invoke(app, ["edge", "outbox", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["path"] == str(tmp_path / "outbox.db")
    assert stats["dropped_events"] == 0


def test_edge_run_refuses_a_bad_config_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump({"device_id": "Bad Id", "cameras": [{"id": "c", "source": "0"}]})
    )
    result = runner.invoke(app, ["edge", "run", "--config", str(config)])
    assert result.exit_code == 2
    assert "device_id" in result.output
    no_uplink = tmp_path / "no-uplink.yaml"
    no_uplink.write_text(
        yaml.safe_dump({"device_id": "d", "cameras": [{"id": "c", "source": "0"}]})
    )
    result = runner.invoke(app, ["edge", "run", "--config", str(no_uplink)])
    assert result.exit_code == 2
    assert "uplink" in result.output
    assert "events_out" in result.output


def test_edge_outbox_shows_depth_age_and_drops(tmp_path: Path) -> None:
    from edge.uplink.outbox import MessageKind, Outbox, OutboxMessage
    from edge.uplink.settings import OutboxSettings

    path = tmp_path / "o.db"
    with Outbox(OutboxSettings(path=path, max_rows=10)) as box:
        for _ in range(12):
            box.put(OutboxMessage(MessageKind.TELEMETRY, "t", b"{}"))
    result = runner.invoke(app, ["edge", "outbox", "--path", str(path)])
    assert result.exit_code == 0, result.output
    assert "depth              10 (0 events, 10 telemetry)" in result.output
    assert "dropped telemetry  2" in result.output
    assert "oldest age" in result.output
    missing = runner.invoke(app, ["edge", "outbox", "--path", str(tmp_path / "none.db")])
    assert missing.exit_code == 1
    both = runner.invoke(app, ["edge", "outbox"])
    assert both.exit_code == 2


def test_edge_run_without_uplink_writes_events_to_a_jsonl_file(
    material: Path, tmp_path: Path
) -> None:
    """The replay of the real clip through `edge run`: the parked car becomes an event."""
    config = tmp_path / "local.yaml"
    config.write_text(
        (REPO_ROOT / "edge" / "examples" / "parking-disabled-bay.yaml").read_text()
        + "\nevents_out: events.jsonl\n"
    )
    doc = yaml.safe_load(config.read_text())
    doc["cameras"][0]["replay"] = "fast"
    config.write_text(yaml.safe_dump(doc))
    agent = build_agent(config)
    result = agent.run(threading.Event())
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert result.published == len(lines) > 0
    kinds = {decode(Event, line).kind for line in lines}
    assert EventKind.ILLEGAL_PARKING in kinds
