"""Provision → unit connects with its own credentials → verify → revoke, on the real stack.

Real Mosquitto (fresh broker from the harness), the real operations API (uvicorn, SQLite,
in-process ingest), the real agent (``cityops edge run``) on real footage, the real balena-sdk
against the local stand-in.
"""

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner, Result

from cityops.cli import app
from tests.conftest import Broker, _start_broker
from tests.provisioning.balena_standin import BalenaStandin
from tests.provisioning.conftest import FLEET, PARKING_CLIP
from tests.provisioning.ops_stack import OpsStack, run_ops_api

pytestmark = pytest.mark.services
ZONES = Path(__file__).parent / "data" / "zones-parking.yaml"
CLIP_SOURCE = "material:data/" + "/".join(PARKING_CLIP)


@pytest.fixture
def ops(broker_factory: Callable[[], Broker], tmp_path: Path) -> Iterator[OpsStack]:
    """A stack of its own (the test counts devices)."""
    with run_ops_api(broker_factory(), tmp_path / "ops") as stack:
        yield stack


@pytest.fixture(scope="module")
def shared_ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsStack]:
    """One stack for the tests that use a device id of their own."""
    workdir = tmp_path_factory.mktemp("ops-shared")
    broker = _start_broker(workdir / "broker")
    try:
        with run_ops_api(broker, workdir / "ops") as stack:
            yield stack
    finally:
        broker.server.stop()


def _cli(args: list[str], ops: OpsStack, balena_dir: Path, standin: BalenaStandin) -> Result:
    env = {
        "CITYOPS_API_URL": ops.url,
        "CITYOPS_API_KEY": ops.technician_key,
        "CITYOPS_BALENA_DATA_DIR": str(balena_dir),
        "BALENA_API_KEY": standin.token,
    }
    return CliRunner().invoke(app, ["provision", *args], env=env)


def _provision_args(device_id: str, out: Path, template: Path | None = None) -> list[str]:
    args = [
        "device", "--id", device_id,
        "--site", "car-park-north", "--lat", "38.7075", "--lon", "-9.1365",
        "--type", "raspberrypi5", "--fleet", FLEET, "--out", str(out),
        "--note", "pole 14", "--os-version", "6.0.13",
    ]  # fmt: skip
    if template is not None:
        args += ["--template", str(template)]
    return args


def _api_get(ops: OpsStack, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ops.technician_key}"}
    return httpx.get(f"{ops.url}/api/v1{path}", headers=headers, timeout=10)


@contextmanager
def running_agent(bundle: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real agent, as on the unit: ``cityops edge run --config <bundle>/agent.yaml``."""
    with log.open("wb") as stderr:
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cityops",
                "edge",
                "run",
                "--config",
                str(bundle / "agent.yaml"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield agent
        finally:
            agent.terminate()
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(5)


def _connect_rc(broker: Broker, username: str, password: str) -> int:
    """CONNACK reason code value of an MQTT 5 connect (0 = accepted)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"probe-{username}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(username, password)
    try:
        return int(client.connect(broker.host, broker.port, keepalive=5)) or _wait_connack(client)
    finally:
        client.disconnect()


def _wait_connack(client: mqtt.Client) -> int:
    codes: list[int] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc.value)
    for _ in range(50):
        client.loop(timeout=0.1)
        if codes:
            return codes[0]
    return -1


def test_provision_verify_zones_revoke(
    ops: OpsStack,
    standin: BalenaStandin,
    balena_dir: Path,
    tmp_path: Path,
) -> None:
    # A site template: the unit's camera (here: real footage, looped) and a quicker telemetry
    # interval than the default.
    template = tmp_path / "site.yaml"
    template.write_text(
        yaml.safe_dump(
            {
                "device_id": "template",
                "cameras": [{"id": "cam0", "source": CLIP_SOURCE, "loop": True}],
                "uplink": {"telemetry_interval_s": 0.5},
            }
        )
    )
    bundle = tmp_path / "bundle"
    first = _cli(_provision_args("pc-01", bundle, template), ops, balena_dir, standin)
    assert first.exit_code == 0, first.output
    assert "Device pc-01 registered" in first.output

    # The stand-in received the device, its env vars and tags; the API knows its balena uuid.
    (bdev,) = standin.state.devices.values()
    uuid = bdev["uuid"]
    env = standin.env_of(uuid)
    creds = json.loads((bundle / "credentials.json").read_text())
    assert env["CITYOPS_EDGE_DEVICE_ID"] == "pc-01"
    assert env["CITYOPS_EDGE_UPLINK__USERNAME"] == "pc-01"
    assert env["CITYOPS_EDGE_UPLINK__PASSWORD"] == creds["password"]
    assert json.loads(env["CITYOPS_EDGE_CAMERAS"])[0]["source"].endswith(PARKING_CLIP[1])
    assert standin.tags_of(uuid) == {
        "cityops_id": "pc-01",
        "site": "car-park-north",
        "lat": "38.707500",
        "lon": "-9.136500",
    }
    assert bdev["note"] == "pole 14"
    for endpoint in (
        "POST /device/register",
        "POST /v7/device_environment_variable",
        "POST /v7/device_tag",
        "PATCH /v7/device(",
        "POST /download-config",
    ):
        assert any(e.startswith(endpoint) for e in standin.endpoints()), endpoint
    assert _api_get(ops, "/devices/pc-01").json()["balena_uuid"] == uuid
    balena_config = json.loads((bundle / "config.json").read_text())
    assert (balena_config["uuid"], balena_config["version"]) == (uuid, "6.0.13")

    # Idempotent: the same command again updates; nothing is duplicated; password rotated.
    again = _cli(_provision_args("pc-01", bundle, template), ops, balena_dir, standin)
    assert again.exit_code == 0, again.output
    assert "Device pc-01 updated" in again.output
    assert len(standin.state.devices) == 1
    assert [d["id"] for d in _api_get(ops, "/devices").json()["items"]] == ["pc-01"]
    new_password = json.loads((bundle / "credentials.json").read_text())["password"]
    assert new_password != creds["password"]
    assert standin.env_of(uuid)["CITYOPS_EDGE_UPLINK__PASSWORD"] == new_password
    assert _connect_rc(ops.broker, "pc-01", creds["password"]) != 0, "old password still works"

    with running_agent(bundle, tmp_path / "agent.log"):
        snapshot = tmp_path / "from-device.jpg"
        verify = _cli(
            ["verify", "pc-01", "--timeout", "60", "--save-snapshot", str(snapshot)],
            ops,
            balena_dir,
            standin,
        )
        assert verify.exit_code == 0, verify.output + (tmp_path / "agent.log").read_text()
        assert verify.output.count("PASS") == 4
        assert snapshot.read_bytes().startswith(b"\xff\xd8")
        listed = _api_get(ops, "/devices?online=true").json()["items"]
        assert [d["id"] for d in listed] == ["pc-01"]

        # Zones drawn on the frame the unit sent, pushed as its config, applied by its pipeline.
        preview = tmp_path / "zones.png"
        zones = _cli(
            ["zones", "pc-01", "--zones", str(ZONES), "--preview", str(preview), "--push"],
            ops,
            balena_dir,
            standin,
        )
        assert zones.exit_code == 0, zones.output
        assert "config version 1 sent to pc-01" in zones.output
        assert preview.stat().st_size > 10_000
        deadline = time.monotonic() + 15
        while _api_get(ops, "/devices/pc-01").json()["config_acked_version"] != 1:
            assert time.monotonic() < deadline, "the unit did not acknowledge the zones"
            time.sleep(0.2)

        # The debug view, through the API's command/ack route: the frame with the pushed zone.
        debug = tmp_path / "debug.jpg"
        view = _cli(["debug-view", "pc-01", "--out", str(debug)], ops, balena_dir, standin)
        assert view.exit_code == 0, view.output + (tmp_path / "agent.log").read_text()
        assert "debug view of pc-01 written" in view.output
        assert debug.read_bytes().startswith(b"\xff\xd8")
        assert debug.read_bytes() != snapshot.read_bytes()
        raw = cv2.imdecode(np.frombuffer(debug.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        drawn = np.asarray(raw, dtype=np.uint8)
        b, g, r = (drawn[..., i].astype(int) for i in range(3))
        assert ((r > 180) & (g < 90) & (b < 90)).sum() > 50, "no red no_parking zone outline"

        standin.device_by_uuid(uuid)["is_online"] = True  # type: ignore[index]
        status = _cli(["fleet", "status", "--fleet", FLEET, "--json"], ops, balena_dir, standin)
        assert status.exit_code == 0, status.output
        (row,) = json.loads(status.output)
        assert (row["device_id"], row["balena_online"], row["mqtt_online"]) == (
            "pc-01",
            True,
            True,
        )
        assert row["attention"] == ""

    revoked = _cli(["revoke", "pc-01"], ops, balena_dir, standin)
    assert revoked.exit_code == 0, revoked.output
    assert _connect_rc(ops.broker, "pc-01", new_password) != 0, "broker still accepts pc-01"
    assert _api_get(ops, "/devices/pc-01").json()["revoked"] is True
    assert "cityops_revoked" in standin.tags_of(uuid)
    assert "CITYOPS_EDGE_UPLINK__PASSWORD" not in standin.env_of(uuid)

    # A revoked id is not brought back by re-provisioning; balena is left alone.
    calls = len(standin.state.calls)
    reused = _cli(_provision_args("pc-01", bundle, template), ops, balena_dir, standin)
    assert reused.exit_code == 1
    assert "pc-01 is revoked" in reused.output
    assert "new --id" in reused.output
    assert not any(c.method != "GET" for c in standin.state.calls[calls:])


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("tag", "set tag cityops_id: HTTP 500"),
        ("env", "set env var CITYOPS_EDGE_DEVICE_ID: HTTP 500"),
        ("register", "register device"),
        ("fleet", "fleet not found"),
        ("unreachable", "unreachable"),
        ("api-key", "401"),
    ],
)
def test_failure_half_way_leaves_nothing_registered(
    *,
    shared_ops: OpsStack,
    standin: BalenaStandin,
    balena_dir: Path,
    tmp_path: Path,
    breakage: str,
    message: str,
) -> None:
    args = _provision_args("pc-02", tmp_path / "bundle")
    env_key = shared_ops.technician_key
    if breakage == "tag":
        standin.fail("POST", "/v7/device_tag")
    elif breakage == "env":
        standin.fail("POST", "/v7/device_environment_variable")
    elif breakage == "register":
        standin.fail("POST", "/device/register")
    elif breakage == "fleet":
        args[args.index(FLEET)] = "city/no-such-fleet"
    elif breakage == "unreachable":
        standin.stop()
    elif breakage == "api-key":
        env_key = "cityops_wrong_key"
    result = CliRunner().invoke(
        app,
        ["provision", *args],
        env={
            "CITYOPS_API_URL": shared_ops.url,
            "CITYOPS_API_KEY": env_key,
            "CITYOPS_BALENA_DATA_DIR": str(balena_dir),
            "BALENA_API_KEY": standin.token,
        },
    )
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert _api_get(shared_ops, "/devices/pc-02").status_code == 404
    assert standin.state.devices == {}
    assert not (tmp_path / "bundle").exists()
    # The API-side failures never reach balena's register; a balena device that was
    # registered is deleted again.
    tried = any(e == "POST /device/register" for e in standin.endpoints())
    removed = any(e.startswith("DELETE /v7/device(") for e in standin.endpoints())
    assert tried == (breakage in {"tag", "env", "register"})
    assert removed == (breakage in {"tag", "env"})


def test_viewer_key_is_refused_before_balena_is_touched(
    shared_ops: OpsStack, standin: BalenaStandin, balena_dir: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["provision", *_provision_args("pc-03", tmp_path / "bundle")],
        env={
            "CITYOPS_API_URL": shared_ops.url,
            "CITYOPS_API_KEY": shared_ops.viewer_key,
            "CITYOPS_BALENA_DATA_DIR": str(balena_dir),
            "BALENA_API_KEY": standin.token,
        },
    )
    assert result.exit_code == 1
    assert "403" in result.output
    assert "technician or admin key" in result.output
    assert not any(e.startswith("POST /device/register") for e in standin.endpoints())


def test_verify_fails_for_a_unit_that_never_connects(
    shared_ops: OpsStack, standin: BalenaStandin, balena_dir: Path, tmp_path: Path
) -> None:
    provisioned = _cli(
        _provision_args("pc-04", tmp_path / "bundle"), shared_ops, balena_dir, standin
    )
    assert provisioned.exit_code == 0, provisioned.output
    result = _cli(["verify", "pc-04", "--timeout", "1"], shared_ops, balena_dir, standin)
    assert result.exit_code == 1, result.output
    assert "PASS registered, not revoked" in result.output
    assert "FAIL status online (MQTT, own credentials): never seen" in result.output
    assert "FAIL camera delivers frames (snapshot): device offline" in result.output
    assert "pc-04: verification failed" in result.output
