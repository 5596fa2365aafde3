"""The bundle is a valid agent config; the balena env vars say the same; secrets stay private."""

import json
import stat
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from edge.settings import EdgeSettings
from provisioning.agent_config import (
    BALENA_ENV_KEYS,
    agent_settings,
    default_cameras,
    load_template,
    to_env,
    validate_agent,
)
from provisioning.api_models import MqttCredentials
from provisioning.bundle import AGENT_FILE, BundleContent, read_manifest, write_bundle

CREDS = MqttCredentials(
    username="pc-01", password=SecretStr("s3cret-pw"), host="mqtt.city.example", port=1883
)


def _agent(template: dict[str, object] | None = None) -> dict[str, object]:
    return agent_settings(
        device_id="pc-01",
        lat=38.7075,
        lon=-9.1365,
        credentials=CREDS,
        template=template,
        cameras=default_cameras("raspberrypi5", None),
    )


def test_bundle_is_a_valid_edge_settings_file_with_private_permissions(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    files = write_bundle(
        out,
        BundleContent(
            agent=_agent(),
            credentials={"username": "pc-01", "password": "s3cret-pw"},
            manifest={"device_id": "pc-01"},
        ),
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    settings = EdgeSettings.from_yaml(out / AGENT_FILE)
    assert settings.device_id == "pc-01"
    assert settings.uplink is not None
    assert settings.uplink.username == "pc-01"
    assert settings.uplink.password is not None
    assert settings.uplink.password.get_secret_value() == "s3cret-pw"
    assert settings.location is not None
    assert (settings.location.lat, settings.location.lon) == (38.7075, -9.1365)
    assert settings.cameras[0].kind == "picamera2"
    assert read_manifest(out) == {"device_id": "pc-01"}
    assert not list(out.glob("*.tmp"))


def test_balena_env_vars_configure_the_same_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _agent()
    env = to_env(agent, BALENA_ENV_KEYS)
    assert env["CITYOPS_EDGE_UPLINK__PASSWORD"] == "s3cret-pw"
    assert env["CITYOPS_EDGE_LOCATION__LAT"] == "38.7075"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from_env = EdgeSettings()  # everything comes from the env
    from_file = EdgeSettings.model_validate(agent)
    assert from_env.model_dump() == from_file.model_dump()


def test_template_keeps_its_settings_and_gets_this_identity(tmp_path: Path) -> None:
    template_file = tmp_path / "site" / "template.yaml"
    template_file.parent.mkdir()
    template_file.write_text(
        yaml.safe_dump(
            {
                "device_id": "template-device",
                "cameras": [{"id": "gate", "source": "clips/gate.mp4", "replay": "fast"}],
                "detector": {"threads": 3},
                "device_config": {
                    "device_id": "template-device",
                    "cameras": [{"id": "gate", "zones": []}],
                },
                "uplink": {"keepalive_s": 60},
                "events_out": "events.jsonl",
            }
        )
    )
    agent = _agent(load_template(template_file))
    settings = EdgeSettings.model_validate(agent)
    assert settings.device_id == "pc-01"
    assert settings.device_config is not None
    assert settings.device_config.device_id == "pc-01"
    assert settings.detector.threads == 3
    assert settings.cameras[0].source == str(tmp_path / "site" / "clips" / "gate.mp4")
    assert settings.uplink is not None
    assert settings.uplink.keepalive_s == 60
    assert settings.uplink.host == "mqtt.city.example"
    assert settings.events_out is None


@pytest.mark.parametrize(
    ("device_type", "source", "expected"),
    [
        ("raspberrypi5", None, "picamera2"),
        ("raspberrypi4-64", None, "picamera2"),
        ("jetson-orin-nano", None, "nvarguscamerasrc"),
        ("raspberrypi5", "rtsp://10.0.0.7/stream", "rtsp://10.0.0.7/stream"),
    ],
)
def test_default_camera_per_board(device_type: str, source: str | None, expected: str) -> None:
    (camera,) = default_cameras(device_type, source)  # type: ignore[arg-type]
    assert str(camera["source"]).startswith(expected)


def test_credentials_file_is_json(tmp_path: Path) -> None:
    write_bundle(
        tmp_path / "b",
        BundleContent(agent=_agent(), credentials={"password": "x"}, manifest={}),
    )
    assert json.loads((tmp_path / "b" / "credentials.json").read_text()) == {"password": "x"}


@pytest.mark.parametrize(
    "example",
    sorted((Path(__file__).parents[2] / "edge" / "examples").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_edge_examples_work_as_templates(example: Path) -> None:
    """Every shipped agent example can be the --template of a provisioning run."""
    agent = _agent(load_template(example))
    validate_agent(agent)
    settings = EdgeSettings.model_validate(agent)
    assert settings.device_id == "pc-01"
    if settings.device_config is not None:
        assert settings.device_config.device_id == "pc-01"
