"""deploy/mosquitto/reload-on-change.sh with the stack's mosquitto.conf and the real Mosquitto.

The compose stack's broker reloads its accounts only through this script (the API cannot signal
another container), so it runs here as the container runs it: the deploy config (container
paths moved to a temp dir, listeners to free loopback ports), files written by
``cityops cloud broker sync``, then a device added to the registry and synced again.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cityops.cli import app
from cloud.broker.passwords import hash_password
from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.tables import create_all
from cloud.services.ports import free_port, wait_tcp
from tests.cloud.broker.peers import DENIED, connect_rc
from tests.conftest import need

pytestmark = pytest.mark.services

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPT = DEPLOY / "mosquitto/reload-on-change.sh"
INGEST_PW = "ingest-pw"


@dataclass
class Listener:
    host: str
    port: int


@dataclass
class Stack:
    workdir: Path
    config: Path
    devices: Listener
    services: Listener
    script: subprocess.Popen[str]

    def sync(self) -> str:
        return _sync(self.config)

    def register(self, device_id: str, password: str) -> None:
        engine = make_engine(f"sqlite:///{self.workdir / 'state.sqlite'}")
        with Session(engine) as session:
            session.add(Device(id=device_id, mqtt_password_hash=hash_password(password)))
            session.commit()
        engine.dispose()

    @property
    def broker_pid(self) -> int:
        return int((self.workdir / "mosquitto.pid").read_text())

    def stop(self) -> int:
        self.script.send_signal(signal.SIGTERM)
        return self.script.wait(15)


def _deploy_conf(workdir: Path, devices: int, services: int) -> str:
    """The stack's mosquitto.conf with this machine's paths and ports."""
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/auth/", f"{workdir}/auth/")
    conf = conf.replace("/mosquitto/data/", f"{workdir}/data/")
    conf = re.sub(r"^listener 1883$", f"listener {devices} 127.0.0.1", conf, flags=re.MULTILINE)
    conf = re.sub(r"^listener 1884$", f"listener {services} 127.0.0.1", conf, flags=re.MULTILINE)
    assert "/mosquitto/" not in re.sub(r"#.*", "", conf), "a container path left: map it here"
    extra = [f"pid_file {workdir}/mosquitto.pid"]
    if os.geteuid() == 0:  # as root Mosquitto would drop to 'mosquitto', who cannot read tmp
        extra.append("user root")
    return "\n".join(extra) + "\n" + conf


def _kill_leftover_broker(stack: Stack) -> None:
    """The script's Mosquitto, if it outlived the script (its pid checked: pids are reused)."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        pid = stack.broker_pid
        if b"mosquitto" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


def _sync(config: Path) -> str:
    result = CliRunner().invoke(app, ["cloud", "broker", "sync", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


SHELLS = [["sh"], ["busybox", "sh"]]
"""Debian's dash, and busybox (the eclipse-mosquitto image's shell) where it is installed."""


@pytest.fixture(params=SHELLS, ids=lambda shell: shell[0])
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    shell: list[str] = request.param
    need(shutil.which(shell[0]) is not None, f"{shell[0]} (apt-get install {shell[0]})")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    need(Path(mosquitto).exists(), "mosquitto (apt-get install mosquitto)")
    (tmp_path / "data").mkdir()
    config = tmp_path / "cloud.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{tmp_path / 'state.sqlite'}",
                "api": {
                    "broker_files": {
                        "passwd": str(tmp_path / "auth/passwd"),
                        "acl": str(tmp_path / "auth/acl"),
                        "services": {"cityops-ingest": INGEST_PW},
                    }
                },
            }
        )
    )
    create_all(make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    devices, services = Listener("127.0.0.1", free_port()), Listener("127.0.0.1", free_port())
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(_deploy_conf(tmp_path, devices.port, services.port))
    assert "wrote" in _sync(config)  # compose: broker-auth completes before mosquitto starts
    script = subprocess.Popen(
        [*shell, str(SCRIPT)],
        env={
            **os.environ,
            "MOSQUITTO": mosquitto,
            "MOSQUITTO_CONF": str(conf),
            "CITYOPS_RELOAD_INTERVAL_S": "0.2",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Stack(tmp_path, config, devices, services, script)
    try:
        wait_tcp(devices.host, devices.port)
        wait_tcp(services.host, services.port)
        yield running
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(5)
        _kill_leftover_broker(running)


def test_the_broker_takes_a_synced_device_without_a_restart(stack: Stack) -> None:
    assert connect_rc(stack.services, "cityops-ingest", INGEST_PW) == 0
    assert connect_rc(stack.devices, "cam-1", "cam-1-pw") == DENIED
    pid = stack.broker_pid
    stack.register("cam-1", "cam-1-pw")
    assert "wrote" in stack.sync()  # no pid file: the script is what reloads
    assert _eventually(lambda: connect_rc(stack.devices, "cam-1", "cam-1-pw") == 0)
    assert stack.broker_pid == pid
    assert "unchanged" in stack.sync()
    time.sleep(1.0)  # five checks of the files: nothing changed, nothing to reload
    assert stack.stop() == 0  # docker stop: SIGTERM reaches Mosquitto, which exits cleanly
    output = stack.script.stdout.read() if stack.script.stdout else ""
    assert output.count("SIGHUP sent to mosquitto") == 1, output
    assert not Path(f"/proc/{pid}").exists()


def test_the_container_ends_when_mosquitto_does(stack: Stack) -> None:
    os.kill(stack.broker_pid, signal.SIGKILL)
    assert stack.script.wait(10) == 128 + signal.SIGKILL  # restart: unless-stopped takes over
