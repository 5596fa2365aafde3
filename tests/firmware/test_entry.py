"""The container entry script runs the real agent from environment variables only.

What balena does on a device, minus Docker: ``agent/entry.sh`` with the release's variables and
the device's, no ``/data/agent.yaml``; real footage, real Mosquitto. The health check passes while
the agent runs, SIGTERM drains it and the script exits 0 with its helpers gone.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from firmware import healthcheck, release
from shared.codec import decode
from shared.telemetry import DeviceState, DeviceStatus
from tests.conftest import Broker
from tests.firmware.nodes import Collector

pytestmark = pytest.mark.services

CLIP = "material:data/parking/car_parks_in_disabled_bay_composed.mp4"
DEVICE = "cam-entry"


def release_env(tmp_path: Path, broker: Broker) -> dict[str, str]:
    compose = yaml.safe_load((release.FIRMWARE_DIR / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["agent"]["environment"].items()}
    data = tmp_path / "data"
    env.update(
        {
            # where the container has /data, /run and /tmp/balena
            "CITYOPS_AGENT_CONFIG": str(data / "agent.yaml"),
            "CITYOPS_EDGE_UPLINK__OUTBOX__PATH": str(data / "outbox.sqlite3"),
            "CITYOPS_RUN_DIR": str(tmp_path),
            "CITYOPS_UPDATE_LOCK": str(tmp_path / "balena" / "updates.lock"),
            # device variables, as `cityops provision` sets them
            "CITYOPS_EDGE_DEVICE_ID": DEVICE,
            "CITYOPS_EDGE_CAMERAS": json.dumps(
                [{"id": "lot", "source": CLIP, "replay": "realtime", "loop": True}]
            ),
            "CITYOPS_EDGE_UPLINK__HOST": broker.host,
            "CITYOPS_EDGE_UPLINK__PORT": str(broker.port),
            "CITYOPS_EDGE_UPLINK__USERNAME": DEVICE,
            "CITYOPS_EDGE_UPLINK__PASSWORD": f"{DEVICE}-pw",
            "CITYOPS_EDGE_UPLINK__TELEMETRY_INTERVAL_S": "0.5",
            # the image's PATH and packages
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "PYTHONPATH": str(release.REPO_ROOT),
            "CITYOPS_SHARED_DIR": os.environ.get("CITYOPS_SHARED_DIR", ""),
            "HOME": str(tmp_path),
        }
    )
    return {k: v for k, v in env.items() if v}


def test_entry_runs_the_agent_from_env_and_stops_on_sigterm(
    mosquitto: Broker, material: Path, tmp_path: Path
) -> None:
    mosquitto.add_user(DEVICE, f"{DEVICE}-pw")
    env = release_env(tmp_path, mosquitto)
    env["CITYOPS_SHARED_DIR"] = str(material)
    collector = Collector(mosquitto, DEVICE)
    proc = subprocess.Popen(
        ["sh", str(release.FIRMWARE_DIR / "agent" / "entry.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        collector.wait_for("status", 1, timeout_s=60)
        collector.wait_for("telemetry", 2, timeout_s=30)
        pidfile = tmp_path / "cityops-agent.pid"
        outbox = Path(env["CITYOPS_EDGE_UPLINK__OUTBOX__PATH"])
        assert healthcheck.check(outbox, pidfile, 30, time.time()) is None
        assert (tmp_path / "cityops-agent.yaml").read_text().strip() == "{}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        collector.close()
    log = err.decode()
    assert proc.returncode == 0, log[-3000:]
    assert "SIGTERM received" in log
    assert f"{DEVICE}-pw" not in log
    assert not (tmp_path / "cityops-agent.pid").exists()
    assert not (tmp_path / "balena" / "updates.lock").exists()
    last = decode(DeviceStatus, collector.on("status")[-1])
    assert last.state is DeviceState.OFFLINE


def test_entry_passes_on_the_agents_config_error(tmp_path: Path) -> None:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(release.REPO_ROOT),
        "CITYOPS_RUN_DIR": str(tmp_path),
        "CITYOPS_UPDATE_LOCK": str(tmp_path / "balena" / "updates.lock"),
        "CITYOPS_AGENT_CONFIG": str(tmp_path / "absent.yaml"),
        "CITYOPS_EDGE_UPLINK__OUTBOX__PATH": str(tmp_path / "data" / "outbox.sqlite3"),
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        ["sh", str(release.FIRMWARE_DIR / "agent" / "entry.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "device_id" in proc.stderr
    assert not (tmp_path / "cityops-agent.pid").exists()


def wait_until(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s: {what}"
        time.sleep(0.1)


def test_entry_holds_the_update_lock_while_the_outbox_drains(
    broker_factory: Callable[[], Broker], material: Path, tmp_path: Path
) -> None:
    broker = broker_factory()
    broker.add_user(DEVICE, f"{DEVICE}-pw")
    broker.server.stop()  # the unit starts while the broker is away: the outbox fills
    env = release_env(tmp_path, broker)
    env["CITYOPS_SHARED_DIR"] = str(material)
    env["CITYOPS_EDGE_UPLINK__BACKOFF_MAX_S"] = "1"
    lock = Path(env["CITYOPS_UPDATE_LOCK"])
    proc = subprocess.Popen(
        ["sh", str(release.FIRMWARE_DIR / "agent" / "entry.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lock.exists, "update lock taken while messages wait", 60)
        assert lock.read_text().startswith("cityops-update-lock pid=")
        broker.server.start()
        wait_until(lambda: not lock.exists(), "update lock released once drained", 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    log = err.decode()
    assert proc.returncode == 0, log[-3000:]
    assert "update lock taken" in log
    assert "update lock released" in log
    assert not lock.exists()
