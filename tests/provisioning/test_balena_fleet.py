"""The real balena-sdk against the local stand-in: endpoints, upserts and error mapping."""

from pathlib import Path

import pytest

from cloud.services.ports import free_port
from provisioning.balena_config import read_api_endpoint, write_balena_cfg
from provisioning.balena_fleet import BalenaFleet
from provisioning.errors import (
    BalenaAuthError,
    BalenaError,
    BalenaUnreachableError,
    FleetNotFoundError,
    InputError,
)
from tests.provisioning.balena_standin import BalenaStandin
from tests.provisioning.conftest import FLEET

# What balena-sdk 17 sends for register + env var + tag + note (see infra-notes §3.3).
REGISTER_ENDPOINTS = [
    "GET /actor/v1/whoami",
    "GET /v7/application",
    "POST /api-key/v1/",
    "GET /v7/application",
    "GET /v7/device_type",
    "POST /device/register",
]


def test_sdk_uses_the_endpoint_from_balena_cfg(fleet: BalenaFleet, standin: BalenaStandin) -> None:
    assert fleet.api_endpoint == standin.url


def test_incomplete_balena_cfg_is_refused_not_silently_replaced(tmp_path: Path) -> None:
    data_dir = tmp_path / "balena"
    data_dir.mkdir()
    (data_dir / "balena.cfg").write_text("[Settings]\napi_endpoint = http://127.0.0.1:9/\n")
    with pytest.raises(InputError, match="api_endpoint"):
        BalenaFleet(data_dir, "token")


def test_missing_balena_cfg_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"balena\.cfg"):
        BalenaFleet(tmp_path / "nowhere", "token")


def test_register_env_tags_note_reach_the_standin(
    fleet: BalenaFleet, standin: BalenaStandin
) -> None:
    device = fleet.ensure_device(FLEET, None, "raspberrypi5")
    assert device.created
    assert len(device.uuid) == 62
    assert standin.endpoints() == REGISTER_ENDPOINTS
    register = standin.state.calls[-1]
    assert register.token.startswith("prov-"), "register must use the provisioning key"
    assert register.body["device_type"] == "raspberrypi5"

    fleet.set_env(device.uuid, {"CITYOPS_EDGE_DEVICE_ID": "pc-01", "A": "1"})
    fleet.set_env(device.uuid, {"A": "2"})
    fleet.set_tags(device.uuid, {"site": "praca", "lat": "38.7"})
    fleet.set_note(device.uuid, "pole 14")
    assert standin.env_of(device.uuid) == {"CITYOPS_EDGE_DEVICE_ID": "pc-01", "A": "2"}
    assert standin.tags_of(device.uuid) == {"site": "praca", "lat": "38.7"}
    assert standin.device_by_uuid(device.uuid)["note"] == "pole 14"  # type: ignore[index]
    # The second set of A went POST -> 409 -> PATCH (pine's upsert).
    env_calls = [e for e in standin.endpoints() if "device_environment_variable" in e]
    assert env_calls == [
        "POST /v7/device_environment_variable",
        "POST /v7/device_environment_variable",
        "POST /v7/device_environment_variable",
        "PATCH /v7/device_environment_variable",
    ]


def test_existing_device_is_kept(fleet: BalenaFleet, standin: BalenaStandin) -> None:
    first = fleet.ensure_device(FLEET, None, "raspberrypi5")
    again = fleet.ensure_device(FLEET, first.uuid, "raspberrypi5")
    assert again.uuid == first.uuid
    assert not again.created
    assert len(standin.state.devices) == 1


def test_list_devices_and_config_json(fleet: BalenaFleet, standin: BalenaStandin) -> None:
    device = fleet.ensure_device(FLEET, None, "raspberrypi5")
    standin.device_by_uuid(device.uuid).update(  # type: ignore[union-attr]
        is_online=True, is_running__release=[{"commit": "abc1234def"}]
    )
    (listed,) = fleet.list_devices(FLEET)
    assert (listed.uuid, listed.online, listed.release) == (device.uuid, True, "abc1234def")
    assert device.api_key is not None
    config = fleet.config_json(FLEET, "raspberrypi5", "6.0.13", device.uuid, device.api_key)
    assert config["uuid"] == device.uuid
    assert config["deviceApiKey"] == device.api_key
    assert config["version"] == "6.0.13"
    assert "POST /download-config" in standin.endpoints()


def test_unknown_fleet(fleet: BalenaFleet) -> None:
    with pytest.raises(FleetNotFoundError, match="city/nope") as info:
        fleet.check_fleet("city/nope")
    assert "fleet slug" in info.value.hint


def test_refused_token(balena_dir: Path) -> None:
    with pytest.raises(BalenaAuthError):
        BalenaFleet(balena_dir, "wrong-token").check_fleet(FLEET)


def test_unreachable_balena(tmp_path: Path) -> None:
    write_balena_cfg(tmp_path, api_endpoint=f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(BalenaUnreachableError, match="unreachable"):
        BalenaFleet(tmp_path, "token").check_reachable(timeout=2)


def test_server_error_is_a_balena_error(fleet: BalenaFleet, standin: BalenaStandin) -> None:
    device = fleet.ensure_device(FLEET, None, "raspberrypi5")
    standin.fail("POST", "/v7/device_tag", 500)
    with pytest.raises(BalenaError, match="set tag site: HTTP 500"):
        fleet.set_tags(device.uuid, {"site": "x"})


def test_openbalena_host_config(tmp_path: Path) -> None:
    from provisioning.balena_config import api_endpoint_for_host

    endpoint = api_endpoint_for_host("balena.city.example")
    write_balena_cfg(tmp_path, api_endpoint=endpoint, balena_host="balena.city.example")
    assert read_api_endpoint(tmp_path) == "https://api.balena.city.example/"
    assert BalenaFleet(tmp_path, "t").api_endpoint == "https://api.balena.city.example/"
