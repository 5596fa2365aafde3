"""EdgeSettings: the YAML config file, its errors and its JSON Schema."""

from pathlib import Path

import pytest

from cityops.paths import REPO_ROOT
from edge.settings import DEFAULT_REPLAY_START, EdgeSettings

EXAMPLES = sorted((REPO_ROOT / "edge" / "examples").glob("*.yaml"))

MINIMAL = """
device_id: cam-01
cameras:
  - id: front
    source: clip.mp4
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_load(path: Path) -> None:
    settings = EdgeSettings.from_yaml(path)
    cfg = settings.initial_config()
    assert cfg.device_id == settings.device_id
    assert {c.id for c in cfg.cameras} <= {c.id for c in settings.cameras}
    # material: sources resolve to the provided footage, never to a path in the repo.
    assert not settings.cameras[0].resolved_source().startswith("material:")


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(MINIMAL + "detector:\n  model_path: models/m.tflite\n", encoding="utf-8")
    settings = EdgeSettings.from_yaml(path)
    assert settings.detector.model_file() == tmp_path / "models" / "m.tflite"
    assert settings.cameras[0].resolved_source(settings.base_dir) == str(tmp_path / "clip.mp4")
    assert settings.replay_start() == DEFAULT_REPLAY_START
    assert settings.initial_config().version == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("colour: red\n", "colour"),
        ("detector:\n  threads: 0\n", "detector.threads"),
        ("detector:\n  type: cuda\n", "detector.type"),
        (
            "device_config:\n  cameras:\n    - id: back\n",
            "device_config.cameras",
        ),
        (
            (
                "device_config:\n  cameras:\n    - id: front\n      zones:\n"
                "        - {id: z, kind: no_parking, polygon: [[0, 0], [1, 0]]}\n"
            ),
            "device_config.cameras.0.zones.0.polygon",
        ),
        (
            (
                "device_config:\n  cameras:\n    - id: front\n      zones:\n"
                "        - {id: z, kind: crowding, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
            ),
            "max_people",
        ),
        ("device_config:\n  device_id: other\n", "device_config.device_id"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, extra: str, field: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(MINIMAL + extra, encoding="utf-8")
    with pytest.raises(ValueError, match=field.replace(".", r"\.")) as info:
        EdgeSettings.from_yaml(path)
    assert str(path) in str(info.value)


def test_device_config_from_a_separate_file(tmp_path: Path) -> None:
    (tmp_path / "zones.yaml").write_text(
        "device_id: cam-01\nversion: 3\ncameras:\n  - id: front\n", encoding="utf-8"
    )
    path = tmp_path / "agent.yaml"
    path.write_text(MINIMAL + "device_config_path: zones.yaml\n", encoding="utf-8")
    assert EdgeSettings.from_yaml(path).initial_config().version == 3


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOPS_EDGE_DETECTOR__THREADS", "3")
    settings = EdgeSettings(device_id="cam-01", cameras=[{"id": "a", "source": "0"}])
    assert settings.detector.threads == 3


def test_json_schema_describes_every_field() -> None:
    schema = EdgeSettings.model_json_schema()
    missing = [
        f"{name}.{prop}"
        for name, model in [("EdgeSettings", schema), *schema.get("$defs", {}).items()]
        if name.endswith("Settings") and name != "UplinkSettings"
        for prop, spec in model.get("properties", {}).items()
        if "description" not in spec
    ]
    assert missing == []
