"""The agent's settings for one device: ``agent.yaml`` and the balena device env vars.

Both are built from the same dict, so a unit configured by the file (``cityops edge run --config
/data/agent.yaml``) and one configured only by ``CITYOPS_EDGE_*`` env vars behave the same.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from provisioning.api_models import MqttCredentials
from provisioning.errors import InputError

DeviceType = Literal["raspberrypi5", "raspberrypi4-64", "jetson-orin-nano"]
BALENA_DEVICE_TYPE: dict[str, str] = {
    "raspberrypi5": "raspberrypi5",
    "raspberrypi4-64": "raspberrypi4-64",
    # balena names the Orin Nano developer kit by its boot medium (firmware/balena.yml).
    "jetson-orin-nano": "jetson-orin-nano-devkit-nvme",
}
"""Our short ``--type`` names and the balena device-type slugs they register as."""
ENV_PREFIX = "CITYOPS_EDGE_"
ENV_NESTED = "__"

JETSON_CSI = (
    "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=15/1 ! "
    "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink"
)


def default_cameras(device_type: DeviceType, source: str | None) -> list[dict[str, Any]]:
    """One camera ``cam0``: the given source, else the board's own camera module."""
    if source is not None:
        return [{"id": "cam0", "source": source}]
    if device_type == "jetson-orin-nano":
        return [{"id": "cam0", "source": JETSON_CSI}]
    return [{"id": "cam0", "kind": "picamera2", "source": "picamera2"}]


def load_template(path: Path) -> dict[str, Any]:
    """An agent YAML to start from (e.g. ``edge/examples/*.yaml``).

    Relative camera sources are made absolute, so the bundle can live anywhere.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"--template {path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"--template {path}: the top level must be a mapping")
    base = path.resolve().parent
    cameras = raw.get("cameras")
    if isinstance(cameras, list):
        raw["cameras"] = [_absolute_source(c, base) for c in cameras]
    for key in ("device_config_path",):
        if isinstance(raw.get(key), str) and not Path(raw[key]).is_absolute():
            raw[key] = str((base / raw[key]).resolve())
    return raw


def _absolute_source(camera: Any, base: Path) -> Any:
    if not isinstance(camera, dict):
        return camera
    src = camera.get("source")
    if (
        isinstance(src, str)
        and ":" not in src
        and not src.isdigit()
        and "!" not in src
        and not Path(src).is_absolute()
    ):
        return {**camera, "source": str((base / src).resolve())}
    return camera


def agent_settings(
    *,
    device_id: str,
    lat: float,
    lon: float,
    credentials: MqttCredentials,
    template: Mapping[str, Any] | None,
    cameras: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``EdgeSettings`` document for this device (the template's other keys are kept)."""
    data: dict[str, Any] = dict(template or {})
    data["device_id"] = device_id
    data["location"] = {"lat": lat, "lon": lon}
    if not data.get("cameras"):
        data["cameras"] = cameras
    uplink = dict(data.get("uplink") or {})
    uplink.update(
        {
            "host": credentials.host,
            "port": credentials.port,
            "username": credentials.username,
            "password": credentials.password.get_secret_value(),
        }
    )
    data["uplink"] = uplink
    device_config = data.get("device_config")
    if isinstance(device_config, dict):
        data["device_config"] = {**device_config, "device_id": device_id}
    data.pop("events_out", None)
    return data


def validate_agent(settings: Mapping[str, Any]) -> None:
    """Check the document against the agent's own ``EdgeSettings`` before anything is registered.

    Raises ``InputError`` naming the field, so a bad template fails on the ladder, not on the pole.
    """
    from pydantic import ValidationError

    from edge.settings import EdgeSettings

    try:
        EdgeSettings.model_validate(dict(settings))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise InputError(f"agent settings: {field}: {err['msg']}") from exc


def to_env(settings: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    """``CITYOPS_EDGE_*`` env vars for the top-level *keys* of *settings*.

    Mappings are flattened with ``__`` (``CITYOPS_EDGE_UPLINK__HOST``); lists are JSON, which
    pydantic-settings parses for complex fields.
    """
    env: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}{ENV_NESTED}{str(key).upper()}", item)
        elif isinstance(value, list):
            env[prefix] = json.dumps(value)
        elif isinstance(value, bool):
            env[prefix] = "true" if value else "false"
        elif value is not None:
            env[prefix] = str(value)

    for key in keys:
        if key in settings:
            walk(f"{ENV_PREFIX}{key.upper()}", settings[key])
    return env


BALENA_ENV_KEYS = ("device_id", "location", "uplink", "cameras")
"""What goes into balena device env vars: identity, credentials and camera sources."""
