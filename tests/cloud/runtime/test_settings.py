"""One cloud.yaml for every cloud command; MQTT client ids derived apart, collisions refused."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from cityops.cli import app as cityops_app
from cloud.api.settings import ApiSettings
from cloud.ingest.runner import with_instance
from cloud.ingest.workers import worker_specs
from cloud.settings import CloudSettings, StoreSettings, mqtt_client_id

CLOUD_YAML = {
    "database_url": "sqlite:///var/state.sqlite",
    "mqtt": {"host": "127.0.0.1", "username": "cityops-ingest", "client_id": "ingest-lisbon"},
    "ingest": {"share_group": "lisbon"},
    "api": {"port": 8099, "mqtt": {"username": "cityops-api"}},
}


def test_ingest_and_serve_read_the_same_cloud_yaml(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(CLOUD_YAML))
    cloud = CloudSettings.from_yaml(path)
    api = ApiSettings.from_yaml(path)
    assert cloud.api.port == api.api.port == 8099
    assert api.cloud.api is api.api
    assert cloud.ingest.share_group == api.cloud.ingest.share_group == "lisbon"


def test_api_client_id_defaults_apart_from_the_ingest_one() -> None:
    # The case: mqtt.client_id set, api.mqtt left to its fallback (the cloud account).
    settings = CloudSettings.model_validate({"mqtt": {"client_id": "ingest-lisbon"}})
    api_id = mqtt_client_id(settings, "api")
    assert api_id != "ingest-lisbon"
    assert api_id.startswith("cityops-api-")
    assert mqtt_client_id(settings, "api", instance=1) != mqtt_client_id(
        settings, "api", instance=2
    )
    assert mqtt_client_id(settings, "ingest") == "ingest-lisbon"  # a lone ingestor: unchanged
    assert mqtt_client_id(settings, "ingest", instance=3) == "ingest-lisbon-i3"


@pytest.mark.parametrize(
    "data",
    [
        {"mqtt": {"client_id": "same"}, "api": {"mqtt": {"client_id": "same"}}},
        {"api": {"mqtt": {"client_id": "cityops-api-x"}}, "mqtt": {"client_id": "cityops-api-x"}},
    ],
)
def test_a_colliding_api_client_id_is_refused_naming_both_fields(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=r"api\.mqtt\.client_id and mqtt\.client_id"):
        CloudSettings.model_validate(data)


def test_workers_and_instances_never_share_an_ingest_client_id() -> None:
    settings = CloudSettings.model_validate(
        {"mqtt": {"client_id": "ing"}, "store": StoreSettings(kind="influx").model_dump()}
    )
    ids = [
        s.settings.mqtt.client_id
        for instance in (None, 0, 1)
        for s in worker_specs(settings, 2, "127.0.0.1", None, "INFO", instance=instance)
    ]
    ids += [with_instance(settings, n).mqtt.client_id for n in (None, 0, 1)]
    assert len(set(ids)) == len(ids) == 9
    assert ids[:2] == ["ing-0", "ing-1"]  # --workers 2 as before: sessions are resumed


def test_cli_refuses_a_colliding_cloud_yaml_naming_the_fields(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump({**CLOUD_YAML, "api": {"mqtt": {"client_id": "ingest-lisbon"}}}))
    for command in (["cloud", "ingest"], ["cloud", "serve"], ["cloud", "db", "current"]):
        result = CliRunner().invoke(cityops_app, [*command, "--config", str(path)])
        assert result.exit_code == 2, (command, result.output)
        assert "api.mqtt.client_id and mqtt.client_id" in result.output


def test_serve_workers_refuses_sqlite_and_in_process_ingest(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(CLOUD_YAML))
    runner = CliRunner()
    result = runner.invoke(cityops_app, ["cloud", "serve", "-c", str(path), "--workers", "2"])
    assert result.exit_code == 2
    assert "--no-ingest" in result.output
    result = runner.invoke(
        cityops_app, ["cloud", "serve", "-c", str(path), "--workers", "2", "--no-ingest"]
    )
    assert result.exit_code == 2
    assert "database_url" in result.output
