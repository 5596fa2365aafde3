"""`cityops cloud broker sync` as the compose stack runs it: PostgreSQL -> files -> Mosquitto.

The real command in a subprocess writes the password file and ACL from a registered device and
the service accounts of cloud.yaml; a fresh Mosquitto started on those files alone must let the
device and the ingest account in, keep the device in its own topics, and refuse the rest.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cityops.cli import app
from cloud.broker.passwords import hash_password, new_password
from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.services.mosquitto import Mosquitto, MosquittoConfig
from shared.clock import utcnow
from shared.topics import Channel, subscription, topic
from tests.cloud.broker.peers import DENIED, OK, Peer, connect_rc

INGEST_PW = "ingest-from-env"
API_PW = "api-from-yaml"
DEVICE_PW = new_password()  # what POST /api/v1/devices/{id}/credentials hands out, shown once


def _config(tmp_path: Path, database_url: str, **broker_files: object) -> Path:
    """A cloud.yaml shaped like deploy/cloud.example.yaml, with placeholder passwords."""
    auth = tmp_path / "auth"
    data = {
        "database_url": database_url,
        "mqtt": {"username": "cityops-ingest", "password": "change-me"},
        "api": {
            "mqtt": {"username": "cityops-api", "password": API_PW},
            "broker_files": {
                "passwd": str(auth / "passwd"),
                "acl": str(auth / "acl"),
                "services": {"cityops-ingest": "change-me", "cityops-api": API_PW},
                **broker_files,
            },
        },
    }
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cityops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cityops", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


# The deployment's secrets come from the environment, over the placeholders in the file.
SECRETS = {
    "CITYOPS_CLOUD_MQTT__PASSWORD": INGEST_PW,
    "CITYOPS_CLOUD_API__BROKER_FILES__SERVICES": json.dumps({"cityops-ingest": INGEST_PW}),
}


@pytest.fixture
def started() -> Iterator[list[Mosquitto]]:
    brokers: list[Mosquitto] = []
    yield brokers
    for broker in brokers:
        broker.stop()


@pytest.mark.services
def test_a_fresh_broker_runs_on_what_the_sync_wrote(
    postgres_db: str, tmp_path: Path, started: list[Mosquitto]
) -> None:
    config = _config(tmp_path, postgres_db)
    migrated = _cityops("cloud", "db", "upgrade", "--config", str(config))
    assert migrated.returncode == 0, migrated.stderr
    engine = make_engine(postgres_db)
    with Session(engine) as session:
        session.add_all(
            [
                Device(id="cam-1", mqtt_password_hash=hash_password(DEVICE_PW)),
                Device(id="cam-2", mqtt_password_hash=hash_password("cam-2-pw")),
                Device(id="cam-gone", revoked=True, revoked_at=utcnow()),
                Device(id="cam-unprovisioned"),
            ]
        )
        session.commit()

    synced = _cityops("cloud", "broker", "sync", "--config", str(config), env=SECRETS)
    assert synced.returncode == 0, synced.stderr
    passwd, acl = tmp_path / "auth/passwd", tmp_path / "auth/acl"
    assert synced.stdout.strip() == (f"wrote {passwd} (2 service accounts, 2 devices) and {acl}"), (
        synced.stdout
    )
    for path in (passwd, acl):
        assert path.stat().st_mode & 0o777 == 0o600
    for secret in (DEVICE_PW, INGEST_PW, API_PW, "change-me"):
        assert secret not in passwd.read_text()

    broker = Mosquitto(
        MosquittoConfig(workdir=tmp_path / "broker", password_file=passwd, acl_file=acl)
    )
    broker.start()
    started.append(broker)
    camera = Peer(broker, "cam-1", DEVICE_PW)
    ingest = Peer(broker, "cityops-ingest", INGEST_PW)
    try:
        assert (camera.rc, ingest.rc) == (0, 0)
        assert ingest.subscribe(subscription(Channel.EVENT)) in (0, 1)
        assert camera.publish(topic("cam-1", Channel.EVENT), b"own") in OK
        assert ingest.messages.get(timeout=5) == b"own"
        assert camera.publish(topic("cam-2", Channel.EVENT), b"forged") == DENIED
        assert connect_rc(broker, "cam-1", "not-its-password") == DENIED
        assert connect_rc(broker, "cityops-ingest", "change-me") == DENIED  # env won
        assert connect_rc(broker, "cam-gone", "") == DENIED
        assert connect_rc(broker, "cityops-api", API_PW) == 0

        again = _cityops("cloud", "broker", "sync", "--config", str(config), env=SECRETS)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("unchanged:"), again.stdout

        # A device provisioned later: the sync signals the running broker through its pid file.
        with Session(engine) as session:
            session.add(Device(id="cam-3", mqtt_password_hash=hash_password("cam-3-pw")))
            session.commit()
        pid_env = {**SECRETS, "CITYOPS_CLOUD_API__BROKER_FILES__PID_FILE": str(broker.pid_file)}
        reloaded = _cityops("cloud", "broker", "sync", "--config", str(config), env=pid_env)
        assert reloaded.returncode == 0, reloaded.stderr
        assert "(2 service accounts, 3 devices)" in reloaded.stdout
        assert f"sent SIGHUP to the broker (pid file {broker.pid_file})" in reloaded.stdout
        newcomer = Peer(broker, "cam-3", "cam-3-pw")
        if newcomer.rc != 0:  # SIGHUP is asynchronous: give the broker a moment to re-read
            newcomer.close()
            newcomer = Peer(broker, "cam-3", "cam-3-pw")
        newcomer.close()
        assert newcomer.rc == 0
        assert camera.publish(topic("cam-1", Channel.EVENT), b"still here") in OK
    finally:
        camera.close()
        ingest.close()
        engine.dispose()


runner = CliRunner()


def _sync(config: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["cloud", "broker", "sync", "--config", str(config)], env=env)
    return result.exit_code, result.output


def test_sync_without_broker_files_names_the_file_and_the_field(tmp_path: Path) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({"database_url": f"sqlite:///{tmp_path / 'state.sqlite'}"}))
    code, output = _sync(config)
    assert code == 2
    assert f"{config}: api.broker_files is not set" in output


def test_sync_refuses_a_service_password_the_cloud_login_does_not_use(tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'state.sqlite'}")
    code, output = _sync(config, env={"CITYOPS_CLOUD_MQTT__PASSWORD": "something-else"})
    assert code == 2
    assert (
        f"{config}: mqtt.password differs from api.broker_files.services.cityops-ingest" in output
    )
    assert not (tmp_path / "auth/passwd").exists()


def test_sync_names_the_setting_of_a_file_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro/acl").mkdir()  # a directory where the ACL file should be
    config = _config(
        tmp_path, f"sqlite:///{tmp_path / 'state.sqlite'}", acl=str(tmp_path / "ro/acl")
    )
    code, output = _sync(config)
    assert code == 2
    assert f"{config}: api.broker_files.acl: cannot write {tmp_path / 'ro/acl'}" in output


def test_sync_without_a_running_broker_writes_and_says_so(tmp_path: Path) -> None:
    config = _config(
        tmp_path, f"sqlite:///{tmp_path / 'state.sqlite'}", pid_file=str(tmp_path / "none.pid")
    )
    code, output = _sync(config)
    assert code == 0, output
    assert f"broker not signalled: {tmp_path / 'none.pid'} names no running process" in output
    assert (tmp_path / "auth/passwd").read_text().count("\n") == 2


def test_sync_help_teaches_with_an_example() -> None:
    for args in (["cloud", "broker", "--help"], ["cloud", "broker", "sync", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Example: cityops cloud broker sync --config cloud.yaml" in result.output
