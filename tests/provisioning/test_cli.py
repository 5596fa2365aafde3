"""CLI commands that need only balena: balena-config and fleet list."""

from pathlib import Path

from typer.testing import CliRunner

from cityops.cli import app
from provisioning.balena_config import read_api_endpoint
from provisioning.balena_fleet import BalenaFleet
from tests.provisioning.balena_standin import BalenaStandin
from tests.provisioning.conftest import FLEET


def test_balena_config_for_openbalena(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "provision",
            "balena-config",
            "--data-dir",
            str(tmp_path),
            "--balena-host",
            "ob.city.example",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_api_endpoint(tmp_path) == "https://api.ob.city.example/"
    assert (tmp_path.stat().st_mode & 0o777) == 0o700


def test_fleet_list_shows_balena_devices(
    fleet: BalenaFleet, standin: BalenaStandin, balena_dir: Path
) -> None:
    device = fleet.ensure_device(FLEET, None, "raspberrypi5")
    standin.device_by_uuid(device.uuid).update(  # type: ignore[union-attr]
        is_online=True, is_running__release=[{"commit": "4f2a9c1e77"}], device_name="pole-14"
    )
    result = CliRunner().invoke(
        app,
        ["provision", "fleet", "list", "--fleet", FLEET],
        env={"CITYOPS_BALENA_DATA_DIR": str(balena_dir), "BALENA_API_KEY": standin.token},
    )
    assert result.exit_code == 0, result.output
    assert device.uuid[:7] in result.output
    assert "pole-14" in result.output
    assert "4f2a9c1e77" in result.output


def test_fleet_list_without_token_is_a_clear_error(balena_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["provision", "fleet", "list", "--fleet", FLEET],
        env={"CITYOPS_BALENA_DATA_DIR": str(balena_dir), "BALENA_API_KEY": ""},
    )
    assert result.exit_code == 1
    assert "BALENA_API_KEY" in result.output


def test_bad_template_is_refused_before_anything_is_registered(
    standin: BalenaStandin, balena_dir: Path, tmp_path: Path
) -> None:
    template = tmp_path / "site.yaml"
    template.write_text("cameras: [{id: cam0, source: '0'}]\ndetector: {threads: 0}\n")
    result = CliRunner().invoke(
        app,
        [
            "provision",
            "device",
            "--id",
            "pc-05",
            "--site",
            "s",
            "--lat",
            "1",
            "--lon",
            "2",
            "--type",
            "raspberrypi5",
            "--fleet",
            FLEET,
            "--out",
            str(tmp_path / "bundle"),
            "--template",
            str(template),
        ],
        env={
            "CITYOPS_API_URL": "http://127.0.0.1:9",
            "CITYOPS_API_KEY": "unused",
            "CITYOPS_BALENA_DATA_DIR": str(balena_dir),
            "BALENA_API_KEY": standin.token,
        },
    )
    assert result.exit_code == 1
    assert "agent settings: detector.threads" in result.output
    assert standin.state.calls == []
    assert not (tmp_path / "bundle").exists()
