"""Provision the demo's camera units through the API and start their edge agents."""

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from cityops.demo.scenario import DemoCamera
from cityops.demo.supervisor import Supervisor
from cityops.paths import REPO_ROOT, data_path
from provisioning.api_client import OpsApiClient
from provisioning.api_models import DeviceUpsert, MqttCredentials

EXAMPLES = REPO_ROOT / "edge" / "examples"


@dataclass(frozen=True, slots=True)
class Agent:
    camera: DemoCamera
    config_path: Path
    clip_bytes: int


def provision(api_url: str, technician_key: str, cam: DemoCamera) -> MqttCredentials:
    """Register the device and get its MQTT credentials, as `cityops provision` does."""
    upsert = DeviceUpsert(
        site=cam.site,
        lat=cam.lat,
        lon=cam.lon,
        device_type="raspberrypi5",
        fleet="cityops-demo",
        note=cam.story,
    )
    with OpsApiClient(api_url, technician_key, timeout=15) as api:
        api.upsert_device(cam.device_id, upsert)
        return api.create_credentials(cam.device_id)


def write_agent_config(
    workdir: Path, cam: DemoCamera, creds: MqttCredentials, *, fast: bool, start: datetime
) -> Agent:
    """The example config of the clip, with this device's identity, credentials and outbox."""
    example = yaml.safe_load((EXAMPLES / cam.example).read_text())
    agent_dir = workdir / "agents" / cam.device_id
    agent_dir.mkdir(parents=True, exist_ok=True)
    agent_dir.chmod(0o700)
    clip = data_path(*cam.clip.split("/"))
    example["device_id"] = cam.device_id
    example["location"] = {"lat": cam.lat, "lon": cam.lon}
    example["start_time"] = start.astimezone(UTC).isoformat()
    for camera in example.get("cameras", []):
        camera["source"] = str(clip)
        camera["replay"] = "fast" if fast else "realtime"
        camera["loop"] = False
    if isinstance(example.get("device_config"), dict):
        example["device_config"]["device_id"] = cam.device_id
    example.pop("events_out", None)
    # Counts (never images) of faces before/after blurring, for the demo's privacy audit.
    example["snapshot"] = {
        **example.get("snapshot", {}),
        "privacy_audit": str(audit_log(agent_dir)),
    }
    example["uplink"] = {
        "host": creds.host,
        "port": creds.port,
        "username": creds.username,
        "password": creds.password.get_secret_value(),
        "telemetry_interval_s": 2.0,
        "outbox": {"path": str(agent_dir / "outbox.sqlite3")},
    }
    path = agent_dir / "agent.yaml"
    path.write_text(yaml.safe_dump(example, sort_keys=False))
    path.chmod(0o600)
    return Agent(cam, path, clip.stat().st_size)


def audit_log(agent_dir: Path) -> Path:
    return agent_dir / "privacy-audit.jsonl"


def start_agent(supervisor: Supervisor, agent: Agent) -> None:
    supervisor.start(
        agent.camera.device_id,
        [sys.executable, "-m", "cityops", "edge", "run", "--config", str(agent.config_path)],
    )
