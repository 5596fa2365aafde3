"""Test harness: real Mosquitto, InfluxDB and PostgreSQL on free loopback ports, real footage.

In CI (``CI`` set) a missing binary or missing material is a failure, never a skip.
"""

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cityops.paths import material_dir
from cloud.broker.acl import AclSpec, ServiceAccount, ServiceRole, render_acl
from cloud.broker.certs import CertPair, issue_cert, issue_device_cert, make_ca
from cloud.broker.passwords import hash_password, password_file
from cloud.services.influxd import InfluxConfig, Influxd
from cloud.services.mosquitto import Mosquitto, MosquittoConfig, TlsListener
from cloud.services.ports import free_port
from cloud.services.process import ServiceNotInstalledError
from shared.limits import MAX_PACKET_BYTES

if TYPE_CHECKING:
    from cloud.services.postgres import Postgres

IN_CI = bool(os.environ.get("CI"))


def need(condition: bool, reason: str) -> None:
    """Fail in CI, skip loudly elsewhere."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for CI: {reason}")
    pytest.skip(f"SKIPPED (not CI): {reason}")


@pytest.fixture(scope="session")
def material() -> Path:
    path = material_dir()
    need((path / "models" / "detect.tflite").exists(), f"provided material at {path}")
    return path


@pytest.fixture(scope="session")
def face_model() -> Path:
    """The BlazeFace model `make test` fetched (`cityops models fetch`, pinned sha256)."""
    from cityops.paths import face_model_path

    path = face_model_path()
    need(path is not None, "the face model: run `cityops models fetch --face-only`")
    assert path is not None
    return path


# --------------------------------------------------------------------------------------- MQTT

ADMIN_USER = "cityops-admin"
INGEST_USER = "cityops-ingest"
API_USER = "cityops-api"
DISPATCH_USER = "cityops-dispatch"
INCIDENTS_USER = "cityops-incidents"
"""Reads every department's incident changes; ``ENV_INCIDENTS_USER`` only environment's."""
ENV_INCIDENTS_USER = "incidents-environment"
DEVICES = ("dev-a", "dev-b", "dev-c")


@dataclass
class Broker:
    """A running broker with password + ACL auth; ``users`` maps username to clear password."""

    server: Mosquitto
    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    services: list[ServiceAccount] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        """The listener devices use: the client id is the login (``use_username_as_clientid``)."""
        return self.server.port

    @property
    def service_port(self) -> int:
        """Loopback listener for services that open several connections under one account."""
        assert self.server.cfg.service_port is not None
        return self.server.cfg.service_port

    def add_user(self, username: str, password: str) -> None:
        """Add (or change) a user and make the broker re-read its files."""
        self.users[username] = password
        self.write_files()
        self.server.reload()

    def remove_user(self, username: str) -> None:
        self.users.pop(username, None)
        self.write_files()
        self.server.reload()

    def write_files(self) -> None:
        (self.workdir / "passwd").write_text(
            password_file({u: hash_password(p) for u, p in self.users.items()})
        )
        (self.workdir / "acl").write_text(render_acl(AclSpec(services=self.services)))
        # The service listener takes service accounts only: no device logs in where client
        # ids are not bound to logins.
        names = {s.username for s in self.services}
        (self.workdir / "passwd.services").write_text(
            password_file({u: hash_password(p) for u, p in self.users.items() if u in names})
        )


def _start_broker(
    workdir: Path,
    tls: TlsListener | None = None,
    *,
    max_packet_size: int = MAX_PACKET_BYTES,
    extra: tuple[str, ...] = (),
) -> Broker:
    workdir.mkdir(parents=True, exist_ok=True)
    need(shutil.which("mosquitto") is not None, "mosquitto (apt-get install mosquitto)")
    users = {
        ADMIN_USER: "admin-pw",
        INGEST_USER: "ingest-pw",
        API_USER: "api-pw",
        DISPATCH_USER: "dispatch-pw",
        INCIDENTS_USER: "incidents-pw",
        ENV_INCIDENTS_USER: "environment-pw",
        **{d: f"{d}-pw" for d in DEVICES},
    }
    services = [
        ServiceAccount(ADMIN_USER, ServiceRole.ADMIN),
        ServiceAccount(INGEST_USER, ServiceRole.INGEST),
        ServiceAccount(API_USER, ServiceRole.OPERATOR),
        ServiceAccount(DISPATCH_USER, ServiceRole.DISPATCH),
        ServiceAccount(INCIDENTS_USER, ServiceRole.INCIDENTS),
        ServiceAccount(ENV_INCIDENTS_USER, ServiceRole.INCIDENTS, ("environment",)),
    ]
    cfg = MosquittoConfig(
        workdir=workdir,
        password_file=workdir / "passwd",
        acl_file=workdir / "acl",
        tls=tls,
        service_port=free_port(),
        service_password_file=workdir / "passwd.services",
        max_packet_size=max_packet_size,
        extra=list(extra),
    )
    broker = Broker(server=Mosquitto(cfg), workdir=workdir, users=users, services=services)
    broker.write_files()
    broker.server.start()
    return broker


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Session broker: password file + ACL, no anonymous access."""
    broker = _start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.server.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Fresh brokers for tests that stop, restart or reconfigure them.

    ``make(max_packet_size=..., extra=("max_inflight_messages 10",))`` changes the limits.
    """
    started: list[Broker] = []

    def make(*, max_packet_size: int = MAX_PACKET_BYTES, extra: tuple[str, ...] = ()) -> Broker:
        broker = _start_broker(
            tmp_path / f"mosquitto-{len(started)}", max_packet_size=max_packet_size, extra=extra
        )
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.server.stop()


@dataclass(frozen=True)
class TlsBroker:
    broker: Broker
    ca: CertPair
    tls_port: int
    certs_dir: Path

    def device_cert(self, device_id: str) -> CertPair:
        return issue_device_cert(self.ca, self.certs_dir, device_id)


@pytest.fixture(scope="session")
def mosquitto_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """Broker with a TLS listener that requires a client cert from the project CA (CN = user)."""
    need(shutil.which("openssl") is not None, "openssl")
    workdir = tmp_path_factory.mktemp("mosquitto-tls")
    ca = make_ca(workdir / "ca")
    server = issue_cert(
        ca, workdir / "server", "localhost", server_names=["127.0.0.1", "localhost"]
    )
    tls_port = free_port()
    listener = TlsListener(port=tls_port, cafile=ca.cert, certfile=server.cert, keyfile=server.key)
    broker = _start_broker(workdir / "broker", tls=listener)
    yield TlsBroker(broker=broker, ca=ca, tls_port=tls_port, certs_dir=workdir / "clients")
    broker.server.stop()


# ----------------------------------------------------------------------------------- InfluxDB


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    need(
        shutil.which("influxd") is not None or Path("/usr/bin/influxd").exists(),
        "influxd (apt-get install influxdb)",
    )
    server = Influxd(InfluxConfig(workdir=tmp_path_factory.mktemp("influxd")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd: Influxd, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database per test, named after the test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    influxd.query(f'DROP DATABASE "{name}"')
    influxd.query(f'CREATE DATABASE "{name}"')
    yield name
    influxd.query(f'DROP DATABASE "{name}"')


@pytest.fixture
def influx_factory(tmp_path: Path) -> Iterator[Callable[[], Influxd]]:
    """Fresh influxd processes for tests that stop and restart the database."""
    started: list[Influxd] = []

    def make() -> Influxd:
        need(shutil.which("influxd") is not None, "influxd")
        server = Influxd(InfluxConfig(workdir=tmp_path / f"influxd-{len(started)}"))
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


# --------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres() -> Iterator["Postgres"]:
    """Session PostgreSQL server (Debian's ``postgresql``), trust auth on loopback, fsync off."""
    need(
        importlib.util.find_spec("psycopg") is not None,
        "psycopg (pip install -e '.[cloud]')",
    )
    from cloud.services.postgres import Postgres, PostgresConfig, find_bindir

    try:
        installed = find_bindir().is_dir()
    except ServiceNotInstalledError:
        installed = False
    need(installed, "PostgreSQL server (apt-get install postgresql)")
    # Not under pytest's basetemp: that is closed (0700) to the ``postgres`` user we run as.
    workdir = Path(tempfile.mkdtemp(prefix="cityops-postgres-"))
    server = Postgres(PostgresConfig(workdir=workdir, fsync=False))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres: "Postgres", request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database per test, named after the test."""
    name = (
        "t_"
        + "".join(c if c.isascii() and c.isalnum() else "_" for c in request.node.name.lower())[:60]
    )
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)
