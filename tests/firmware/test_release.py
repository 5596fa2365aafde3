"""The balena release validates statically (no Docker engine here: images are not built).

compose file against the compose specification's JSON Schema (shipped by check-jsonschema),
balena.yml, the device-type Dockerfiles, the staged build context, and the agent's env vars
derived from ``edge.settings.EdgeSettings``.
"""

import json
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from edge.settings import EdgeSettings
from firmware import release

FIRMWARE = release.FIRMWARE_DIR
AGENT = FIRMWARE / "agent"
PI_TYPES = ("raspberrypi4-64", "raspberrypi5")
JETSON = "jetson-orin-nano-devkit-nvme"
ARCH = {"raspberrypi4-64": "aarch64", "raspberrypi5": "aarch64", JETSON: "aarch64"}
BALENA_PLACEHOLDERS = {
    "BALENA_ARCH",
    "BALENA_MACHINE_NAME",
    "BALENA_APP_NAME",
    "BALENA_RELEASE_HASH",
    "BALENA_SERVICE_NAME",
}


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(FIRMWARE / "docker-compose.yml")


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# ------------------------------------------------------------------------------ compose


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], compose_validator: jsonschema.protocols.Validator
) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in compose_validator.iter_errors(compose)
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "agent", "restart"), 3),
        (("services", "agent", "healthcheck", "retries"), [3]),
        (("services", "agent", "healthcheck", "test"), 5),
        (("services", "agent", "volumes"), "agent-data:/data"),
        (("services", "agent", "bogus"), True),
        (("servicez",), {}),
    ],
)
def test_the_schema_catches_broken_compose_files(
    compose: dict[str, Any],
    compose_validator: jsonschema.protocols.Validator,
    path: tuple[str, ...],
    value: object,
) -> None:
    broken = json.loads(json.dumps(compose))
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert not compose_validator.is_valid(broken)


def test_outbox_lives_on_a_named_volume(compose: dict[str, Any]) -> None:
    agent = compose["services"]["agent"]
    mounts = dict(m.split(":", 1) for m in agent["volumes"])
    assert set(mounts) <= set(compose["volumes"])  # named volumes, not bind mounts
    outbox = Path(agent["environment"]["CITYOPS_EDGE_UPLINK__OUTBOX__PATH"])
    assert any(outbox.is_relative_to(target) for target in mounts.values())
    assert Path(agent["environment"]["CITYOPS_AGENT_CONFIG"]).is_relative_to(mounts["agent-data"])
    assert agent["healthcheck"]["test"][-2:] == ["-m", "firmware.healthcheck"]
    assert (FIRMWARE / agent["build"]).is_dir()
    # balena stops the old container only after the new image is down (no long camera gap).
    assert agent["labels"]["io.balena.update.strategy"] == "download-then-kill"
    # The stop grace must cover the agent's own drain on SIGTERM.
    flush = float(agent["environment"]["CITYOPS_EDGE_UPLINK__FLUSH_TIMEOUT_S"])
    assert flush < float(agent["stop_grace_period"].removesuffix("s"))


# -------------------------------------------------------------------------- environment


def declared_env(compose: dict[str, Any]) -> dict[str, str]:
    env = dict(compose["services"]["agent"]["environment"])
    for item in load_yaml(FIRMWARE / "balena.yml")["data"]["applicationEnvironmentVariables"]:
        env.update({k: str(v) for k, v in item.items()})
    return env


def test_env_vars_are_derived_from_the_agent_settings() -> None:
    names = {v.name for v in release.agent_env_vars()}
    leaves = 0
    for field, info in EdgeSettings.model_fields.items():
        if info.exclude:
            assert f"CITYOPS_EDGE_{field.upper()}" not in names
            continue
        matching = [n for n in names if n == f"CITYOPS_EDGE_{field.upper()}"]
        nested = [n for n in names if n.startswith(f"CITYOPS_EDGE_{field.upper()}__")]
        assert matching or nested, field
        leaves += len(matching) + len(nested)
    assert leaves == len(names)
    assert "CITYOPS_EDGE_UPLINK__OUTBOX__PATH" in names
    assert "CITYOPS_EDGE_UPLINK__TLS__CA_FILE" in names


def test_every_env_var_the_agent_reads_is_declared() -> None:
    """firmware/ENVIRONMENT.md, the technicians' reference, names exactly what the agent reads.

    Regenerate it with ``python -m firmware.release env-doc`` when EdgeSettings changes.
    """
    doc = (FIRMWARE / "ENVIRONMENT.md").read_text()
    documented = set(re.findall(r"^\| `(CITYOPS_EDGE_[A-Z0-9_]+)` \|", doc, flags=re.MULTILINE))
    derived = {v.name for v in release.agent_env_vars()}
    assert derived - documented == set(), "undeclared: run python -m firmware.release env-doc"
    assert documented - derived == set(), "stale: run python -m firmware.release env-doc"
    for var in release.CONTAINER_VARS:
        assert f"| `{var.name}` |" in doc


def test_env_doc_is_what_the_generator_writes(tmp_path: Path) -> None:
    out = tmp_path / "ENVIRONMENT.md"
    assert release.main(["env-doc", "--out", str(out)]) == 0
    assert out.read_text() == release.env_doc()
    assert "| `CITYOPS_EDGE_UPLINK__OUTBOX__PATH` | string | `outbox.sqlite3` |" in out.read_text()


def test_every_env_var_the_release_sets_is_read(compose: dict[str, Any]) -> None:
    agent = {v.name for v in release.agent_env_vars()}
    container = {v.name for v in release.CONTAINER_VARS}
    unknown = set(declared_env(compose)) - agent - container
    assert unknown == set(), f"set by the release but read by nobody (typo?): {unknown}"


def test_env_only_settings_validate(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the container does without /data/agent.yaml: '{}' plus release and device vars."""
    device_vars = {
        "CITYOPS_EDGE_DEVICE_ID": "cam-017",
        "CITYOPS_EDGE_CAMERAS": json.dumps([{"id": "north", "source": "0"}]),
        "CITYOPS_EDGE_LOCATION__LAT": "38.7223",
        "CITYOPS_EDGE_LOCATION__LON": "-9.1393",
        "CITYOPS_EDGE_UPLINK__HOST": "mqtt.city.example",
        "CITYOPS_EDGE_UPLINK__USERNAME": "cam-017",
        "CITYOPS_EDGE_UPLINK__PASSWORD": "s3cret",
    }
    for name, value in {**declared_env(compose), **device_vars}.items():
        monkeypatch.setenv(name, value)
    empty = tmp_path / "agent.yaml"
    empty.write_text("{}\n")
    settings = EdgeSettings.from_yaml(empty)
    assert settings.device_id == "cam-017"
    assert settings.uplink is not None
    assert settings.uplink.port == 8883
    assert settings.uplink.outbox.path == Path("/data/outbox.sqlite3")
    assert settings.uplink.tls is not None
    assert settings.uplink.tls.ca_file == Path("/data/certs/ca.pem")
    assert settings.uplink.flush_timeout_s == 8.0
    assert settings.detector.threads == 4
    assert settings.location is not None
    assert settings.location.lon == pytest.approx(-9.1393)


# -------------------------------------------------------------------------- balena.yml


class BalenaData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaultDeviceType: str  # noqa: N815 - balena's key
    supportedDeviceTypes: list[str] = Field(min_length=1)  # noqa: N815
    applicationEnvironmentVariables: list[dict[str, str]] = []  # noqa: N815


class BalenaYml(BaseModel):
    """The fields of balena.yml this release uses (balena publishes no JSON Schema for it)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,}$")
    type: Literal["sw.application", "sw.block"]
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    description: str
    joinable: bool = True
    data: BalenaData


def test_balena_yml_targets_the_camera_units() -> None:
    meta = BalenaYml.model_validate(load_yaml(FIRMWARE / "balena.yml"))
    assert set(meta.data.supportedDeviceTypes) == {*PI_TYPES, JETSON}
    assert meta.data.defaultDeviceType in meta.data.supportedDeviceTypes
    assert all(len(item) == 1 for item in meta.data.applicationEnvironmentVariables)
    pyproject = (release.REPO_ROOT / "pyproject.toml").read_text()
    assert f'version = "{meta.version}"' in pyproject


# --------------------------------------------------------------------------- Dockerfiles


def balena_dockerfile(device_type: str) -> Path:
    """Balena's resolution order: Dockerfile.<device type>, .<arch>, .template, plain."""
    for name in (
        f"Dockerfile.{device_type}",
        f"Dockerfile.{ARCH[device_type]}",
        "Dockerfile.template",
        "Dockerfile",
    ):
        if (AGENT / name).exists():
            return AGENT / name
    raise AssertionError(f"no Dockerfile for {device_type}")


def render(path: Path, device_type: str) -> str:
    text = path.read_text()
    used = set(re.findall(r"%%([A-Z_]+)%%", text))
    assert used <= BALENA_PLACEHOLDERS, used - BALENA_PLACEHOLDERS
    if path.name != "Dockerfile.template":
        assert not used, "only Dockerfile.template is rendered by balena"
    return text.replace("%%BALENA_MACHINE_NAME%%", device_type).replace(
        "%%BALENA_ARCH%%", ARCH[device_type]
    )


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", dockerfile)
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def staged(
    material: Path, face_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> release.StagedRelease:
    return release.stage(tmp_path_factory.mktemp("release") / "balena", material)


@pytest.mark.parametrize("device_type", [*PI_TYPES, JETSON])
def test_dockerfile_per_device_type_builds_from_the_staged_context(
    device_type: str, staged: release.StagedRelease
) -> None:
    path = balena_dockerfile(device_type)
    assert path.name == (f"Dockerfile.{JETSON}" if device_type == JETSON else "Dockerfile.template")
    steps = instructions(render(path, device_type))
    ops = [op for op, _ in steps]
    assert ops[0] in {"FROM", "ARG"}
    assert set(ops) <= {
        "FROM",
        "ARG",
        "ENV",
        "RUN",
        "COPY",
        "LABEL",
        "WORKDIR",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "CMD",
    }
    context = staged.root / "agent"
    stages: set[str] = set()
    for op, rest in steps:
        if op == "FROM":
            image, _, alias = rest.partition(" AS ")
            stages.add(alias.strip())
            if image.strip() not in stages:
                assert "--platform=linux/arm64" in image  # both targets are 64-bit ARM
        if op == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                assert (context / source).exists(), f"{path.name}: COPY {source} not in context"
    text = " ".join(rest for _, rest in steps)
    assert "venv --system-site-packages /opt/cityops" in text
    assert '"/usr/src/cityops[edge]"' in text
    cmd = json.loads(dict(steps)["CMD"])
    assert cmd == ["/usr/local/bin/cityops-entry"]
    assert "COPY entry.sh /usr/local/bin/cityops-entry" in [
        f"COPY {r}" for o, r in steps if o == "COPY"
    ]
    assert "firmware.healthcheck" in dict(steps)["HEALTHCHECK"]
    if device_type == JETSON:
        assert "-DWITH_GSTREAMER=ON" in text
        assert "nvidia-l4t-gstreamer" in text
        # the GStreamer OpenCV wheel goes in first, so pip keeps it for opencv-python-headless
        assert text.index("pip install /wheels/opencv") < text.index('"/usr/src/cityops[edge]"')
    else:
        assert "python3-picamera2" in text
        assert "python3-libcamera" in text


def test_staged_release_holds_sources_and_model(staged: release.StagedRelease) -> None:
    src = staged.root / "agent" / "src"
    for package in ("shared", "edge", "firmware", "cityops"):
        assert (src / package / "__init__.py").is_file()
    assert (src / "pyproject.toml").is_file()
    assert staged.model.stat().st_size > 100_000
    assert not list(staged.root.rglob("__pycache__"))
    assert load_yaml(staged.compose) == load_yaml(FIRMWARE / "docker-compose.yml")


def test_staged_release_carries_the_face_model(staged: release.StagedRelease) -> None:
    from cityops.models import FACE_MODEL, sha256_of

    assert staged.face_model.parent == staged.model.parent  # both land in /usr/share/cityops/models
    assert staged.face_model.name == "face_detection_back.tflite"
    assert sha256_of(staged.face_model.read_bytes()) == FACE_MODEL.sha256
    for dockerfile in AGENT.glob("Dockerfile*"):
        assert "COPY models/ /usr/share/cityops/models/" in dockerfile.read_text()
        assert "CITYOPS_SHARED_DIR=/usr/share/cityops" in dockerfile.read_text()


def test_stage_refuses_a_release_without_face_model(material: Path, tmp_path: Path) -> None:
    fake = tmp_path / "face_detection_back.tflite"
    fake.write_bytes(b"not the model")
    with pytest.raises(FileNotFoundError, match="pinned sha256"):
        release.stage(tmp_path / "out", material, face_model=fake)


def test_stage_names_missing_material(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"detect\.tflite"):
        release.stage(tmp_path / "out", material=tmp_path / "nowhere")


def test_entry_script_parses_and_the_agent_cli_needs_no_cloud_packages() -> None:
    subprocess.run(["sh", "-n", str(AGENT / "entry.sh")], check=True)
    blocked = (
        "fastapi",
        "sqlalchemy",
        "aiomqtt",
        "uvicorn",
        "httpx",
        "prometheus_client",
        "balena",
    )
    code = (
        "import sys\n"
        f"for m in {blocked!r}:\n    sys.modules[m] = None\n"
        "from edge.cli import app\nimport edge.agent, firmware.update_lock, firmware.healthcheck\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=release.REPO_ROOT,
    )
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_provisioning_sets_only_variables_the_agent_reads() -> None:
    from provisioning.agent_config import BALENA_ENV_KEYS, to_env

    settings = {
        "device_id": "cam-042",
        "location": {"lat": 38.7, "lon": -9.1},
        "uplink": {
            "host": "mqtt.city.example",
            "port": 8883,
            "username": "cam-042",
            "password": "pw",
            "tls": {"ca_file": "/data/certs/ca.pem"},
        },
        "cameras": [{"id": "cam0", "kind": "picamera2", "source": "picamera2"}],
    }
    names = set(to_env(settings, BALENA_ENV_KEYS))
    assert len(names) >= 8
    assert names <= {v.name for v in release.agent_env_vars()}
