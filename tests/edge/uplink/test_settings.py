"""Uplink settings: pair checks that name the field, secrets from the environment, paths."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from edge.agent import resolve_uplink_paths
from edge.settings import EdgeSettings
from edge.uplink.settings import UplinkSettings


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"password": "x"}, "username"),
        ({"tls": {"ca_file": "ca.crt", "cert_file": "d.crt"}}, "key_file"),
        ({"backoff_initial_s": 5, "backoff_max_s": 1}, "backoff_max_s"),
        ({"port": 70000}, "port"),
        ({"outbox": {"max_rows": 1}}, "max_rows"),
        ({"hots": "typo"}, "hots"),
    ],
)
def test_bad_uplink_settings_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        UplinkSettings.model_validate(data)


def test_password_comes_from_the_environment_and_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cam.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device_id": "cam-1",
                "cameras": [{"id": "c", "source": "0"}],
                "uplink": {
                    "host": "broker.example",
                    "port": 8883,
                    "username": "cam-1",
                    "tls": {"ca_file": "certs/ca.crt"},
                    "outbox": {"path": "state/outbox.db"},
                },
            }
        )
    )
    monkeypatch.setenv("CITYOPS_EDGE_UPLINK__PASSWORD", "from-env-secret")
    settings = EdgeSettings.from_yaml(config)
    assert settings.uplink is not None
    assert settings.uplink.password is not None
    assert settings.uplink.password.get_secret_value() == "from-env-secret"
    assert "from-env-secret" not in repr(settings)
    assert "from-env-secret" not in settings.model_dump_json()
    resolved = resolve_uplink_paths(settings.uplink, settings.base_dir)
    assert resolved.outbox.path == tmp_path / "state" / "outbox.db"
    assert resolved.tls is not None
    assert resolved.tls.ca_file == tmp_path / "certs" / "ca.crt"


def test_missing_tls_file_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cityops.cli import app

    config = tmp_path / "cam.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device_id": "cam-1",
                "cameras": [{"id": "c", "source": "0"}],
                "uplink": {"port": 8883, "tls": {"ca_file": "missing-ca.crt"}},
            }
        )
    )
    result = CliRunner().invoke(app, ["edge", "run", "--config", str(config)])
    assert result.exit_code == 2
    assert "uplink.tls.ca_file" in result.output
