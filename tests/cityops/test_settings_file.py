"""Settings files on edge and cloud: env > file > defaults, one error text, "did you mean"."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityops.cli import app
from cityops.settings_file import SettingsFileError
from cloud.api.settings import ApiSettings
from cloud.settings import CloudSettings
from edge.settings import EdgeSettings

EDGE = """
device_id: cam-01
cameras: [{id: front, source: clip.mp4}]
detector: {threads: 3, min_score: 0.5}
"""
CLOUD = """
database_url: sqlite:///from-file.sqlite
mqtt: {host: file-host, port: 1884}
api: {port: 9000}
"""


def test_edge_env_beats_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(EDGE)
    monkeypatch.setenv("CITYOPS_EDGE_DETECTOR__THREADS", "4")
    monkeypatch.setenv("CITYOPS_EDGE_DEVICE_ID", "cam-env")
    s = EdgeSettings.from_yaml(path)
    assert s.detector.threads == 4  # env over file
    assert s.device_id == "cam-env"
    assert s.detector.min_score == 0.5  # file, untouched by a sibling env var
    assert s.motion.keyframe_s == 2.0  # default
    assert EdgeSettings.from_yaml(path, device_id="cam-cli").device_id == "cam-cli"


def test_cloud_env_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(CLOUD)
    ingest_only = tmp_path / "ingest.yaml"
    ingest_only.write_text(CLOUD.replace("api: {port: 9000}", ""))
    monkeypatch.setenv("CITYOPS_CLOUD_MQTT__HOST", "env-host")
    for settings in (CloudSettings.from_yaml(ingest_only), ApiSettings.from_yaml(path).cloud):
        assert settings.mqtt.host == "env-host"
        assert settings.mqtt.port == 1884
        assert settings.database_url == "sqlite:///from-file.sqlite"
        assert settings.ingest.batch_size == 2000
    assert ApiSettings.from_yaml(path).api.port == 9000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: {port: 0}\n", "cloud.yaml: mqtt.port: Input should be greater than or equal to 1"),
        ("mqt: {port: 1}\n", "cloud.yaml: mqt: unknown setting; did you mean 'mqtt'?"),
        (
            "ingest: {batch_sise: 5}\n",
            "ingest.batch_sise: unknown setting; did you mean 'batch_size'?",
        ),
        ("api: {prot: 1}\n", "cloud.yaml: api.prot: unknown setting; did you mean 'port'?"),
        ("- 1\n", "cloud.yaml: settings must be a mapping"),
    ],
)
def test_cloud_errors_name_the_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(text)
    with pytest.raises(SettingsFileError) as info:
        ApiSettings.from_yaml(path)
    assert str(info.value).startswith(str(tmp_path))
    assert expected in str(info.value)


def test_edge_typo_says_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(EDGE + "snapshot: {blur_face: true}\ncameras: [{id: f, sorce: x}]\n")
    with pytest.raises(SettingsFileError) as info:
        EdgeSettings.from_yaml(path)
    text = str(info.value)
    assert "snapshot.blur_face: unknown setting; did you mean 'blur_faces'?" in text
    assert "cameras.0.sorce: unknown setting; did you mean 'source'?" in text


def test_cloud_cli_prints_the_file_not_a_pydantic_dump(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text("store: {kind: mongo}\n")
    result = CliRunner().invoke(app, ["cloud", "keys", "list", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}: store.kind: Input should be 'sqlite' or 'influx'" in result.output
    assert "errors.pydantic.dev" not in result.output
