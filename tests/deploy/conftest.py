"""A running CityOps stack on loopback for the observability tests.

Real Mosquitto and InfluxDB from the harness; ``cityops cloud ingest --metrics-port`` and
``cityops cloud serve --no-ingest`` as their own processes (the two scrape targets of
``deploy/prometheus/prometheus.yml``), sharing a SQLite state database.
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.orm import Session

from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.tables import create_all
from cloud.services.influxd import Influxd
from cloud.services.ports import free_port
from cloud.services.prometheus import (
    DEPLOY_DIR,
    Prometheus,
    PrometheusConfig,
    derive_config,
    shorten_rules,
)
from tests.conftest import API_USER, INGEST_USER, Broker, need

SITES = {"dev-a": "rossio", "dev-b": "baixa"}
FOR_S = 3.0
"""Every rule's ``for:`` in the tests (5 min in production for CityOpsDeviceOffline)."""


@dataclass
class Stack:
    broker: Broker
    influx: Influxd
    database: str
    workdir: Path
    api_port: int
    ingest_port: int
    state_url: str

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    def api_metrics(self) -> str:
        return httpx.get(f"{self.api_url}/metrics", timeout=10).text

    def ingest_metrics(self) -> str:
        return httpx.get(f"{self.ingest_url}/metrics", timeout=10).text


def _wait(check: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {timeout:.0f} s; log:\n{log.read_text()[-3000:]}")


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cityops", *argv],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="package")
def stack(
    mosquitto: Broker, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    need(shutil.which("prometheus") is not None, "prometheus (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("stack")
    database = f"obs_{os.getpid()}"
    influxd.query(f'CREATE DATABASE "{database}"')
    state_url = f"sqlite:///{workdir / 'state.sqlite'}"
    engine = make_engine(state_url)
    create_all(engine)
    with Session(engine) as session:  # registered as a technician would (PUT /api/v1/devices)
        for device, site in SITES.items():
            session.add(Device(id=device, site=site, device_type="esp32", lat=38.71, lon=-9.14))
        session.commit()
    engine.dispose()
    broker = {"host": mosquitto.host, "port": mosquitto.port}
    cloud = {
        "database_url": state_url,
        "mqtt": {
            **broker,
            "username": INGEST_USER,
            "password": mosquitto.users[INGEST_USER],
            "client_id": f"obs-ingest-{os.getpid()}",
        },
        "store": {"kind": "influx", "influx": {"url": influxd.url, "database": database}},
        "ingest": {
            "share_group": f"obs-{os.getpid()}",
            "session_expiry_s": 0,
            "batch_interval_s": 0.05,
        },
    }
    api_port, ingest_port = free_port(), free_port()
    api = {
        "host": "127.0.0.1",
        "port": api_port,
        "sla_check_interval_s": 1,
        "mqtt": {
            **broker,
            "username": API_USER,
            "password": mosquitto.users[API_USER],
            "client_id": f"obs-api-{os.getpid()}",
        },
    }
    ingest_yaml = workdir / "cloud.yaml"
    ingest_yaml.write_text(yaml.safe_dump(cloud))
    api_yaml = workdir / "api.yaml"
    api_yaml.write_text(yaml.safe_dump({**cloud, "api": api}))
    ingest_log, api_log = workdir / "ingest.log", workdir / "api.log"
    procs = [
        _start(
            ["cloud", "ingest", "--config", str(ingest_yaml), "--metrics-port", str(ingest_port)],
            ingest_log,
        ),
        _start(["cloud", "serve", "--config", str(api_yaml), "--no-ingest"], api_log),
    ]
    running = Stack(mosquitto, influxd, database, workdir, api_port, ingest_port, state_url)
    try:
        _wait(lambda: "ingest subscribed" in ingest_log.read_text(), 30, "ingest up", ingest_log)
        _wait(
            lambda: httpx.get(f"{running.api_url}/readyz", timeout=2).status_code == 200,
            30,
            "API ready",
            api_log,
        )
        yield running
    finally:
        for proc in procs:
            _stop(proc)
        influxd.query(f'DROP DATABASE "{database}"')
    for log in (ingest_log, api_log):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="package")
def prometheus(stack: Stack) -> Iterator[Prometheus]:
    """The real Prometheus on the shipped config and rules, shortened, scraping *stack*."""
    base = yaml.safe_load((DEPLOY_DIR / "prometheus.yml").read_text())
    rules = {
        f"rules-{path.name}": shorten_rules(yaml.safe_load(path.read_text()), FOR_S, 10)
        for path in sorted((DEPLOY_DIR / "rules").glob("*.yml"))
    }
    config = derive_config(
        base,
        {
            "cityops-api": [f"127.0.0.1:{stack.api_port}"],
            "cityops-ingest": [f"127.0.0.1:{stack.ingest_port}"],
        },
        interval_s=1,
        rule_files=sorted(rules),
    )
    server = Prometheus(
        PrometheusConfig(workdir=stack.workdir / "prometheus", config=config, rules=rules)
    )
    server.start()
    yield server
    server.stop()
