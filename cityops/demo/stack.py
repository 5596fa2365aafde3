"""Bring up the operations center for the demo: broker with per-device credentials, API + ingest."""

import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from cityops.demo.supervisor import Supervisor
from cloud.broker.acl import ServiceAccount, ServiceRole
from cloud.broker.passwords import hash_password, password_file
from cloud.broker.registry import BrokerFiles, ServiceCredential, sync_broker
from cloud.db.base import make_engine, make_sessionmaker
from cloud.db.tables import create_all
from cloud.services.influxd import InfluxConfig, Influxd
from cloud.services.mosquitto import Mosquitto, MosquittoConfig
from cloud.services.ports import free_port

INGEST_USER = "cityops-ingest"
API_USER = "cityops-api"
MONITOR_USER = "cityops-admin"


@dataclass(frozen=True, slots=True)
class Keys:
    admin: str
    operator: str
    technician: str


DEMO_USER = "demo"
"""The console login the demo prints (a supervisor of every department; new password per run)."""


@dataclass
class Stack:
    workdir: Path
    broker: Mosquitto
    influx: Influxd | None
    api_url: str
    keys: Keys
    service_passwords: dict[str, str]
    console_password: str

    def stop_services(self) -> None:
        self.broker.stop()
        if self.influx is not None:
            self.influx.stop()


def _services(passwords: dict[str, str]) -> list[ServiceCredential]:
    roles = {
        INGEST_USER: ServiceRole.INGEST,
        API_USER: ServiceRole.SERVE,  # ``cloud serve`` ingests in-process: it confirms events
        MONITOR_USER: ServiceRole.ADMIN,
    }
    return [
        ServiceCredential(ServiceAccount(user, roles[user]), hash_password(pw))
        for user, pw in passwords.items()
    ]


def start_stack(workdir: Path, supervisor: Supervisor, *, store: str) -> Stack:
    """Start Mosquitto (+ InfluxDB) and ``cityops cloud serve``; return once the API answers."""
    from cloud.ops.keys import create_api_key
    from cloud.ops.users import create_user

    passwords = {u: secrets.token_urlsafe(18) for u in (INGEST_USER, API_USER, MONITOR_USER)}
    db_url = f"sqlite:///{workdir / 'cityops.sqlite'}"
    engine = make_engine(db_url)
    create_all(engine)
    sessions = make_sessionmaker(engine)

    broker_dir = workdir / "broker"
    broker_dir.mkdir(parents=True, exist_ok=True)
    files = BrokerFiles(broker_dir / "passwd", broker_dir / "acl", broker_dir / "mosquitto.pid")
    with sessions() as session:
        sync_broker(session, files, _services(passwords))
        keys = Keys(
            admin=create_api_key(session, name="demo-admin", role="admin"),
            operator=create_api_key(session, name="demo-operator", role="operator"),
            technician=create_api_key(session, name="demo-technician", role="technician"),
        )
        console_password = secrets.token_urlsafe(9)
        create_user(
            session, DEMO_USER, console_password, "supervisor", display_name="Demo supervisor"
        )
        session.commit()
    engine.dispose()

    # Devices connect on the main port, where the client id is the login. The cloud services
    # share accounts across connections (``cloud serve`` runs the API's MQTT client and the
    # ingestor), so they use a loopback listener that takes service accounts only.
    services_passwd = broker_dir / "passwd.services"
    services_passwd.write_text(password_file({u: hash_password(pw) for u, pw in passwords.items()}))
    services_passwd.chmod(0o600)
    broker = Mosquitto(
        MosquittoConfig(
            workdir=broker_dir,
            password_file=files.passwd,
            acl_file=files.acl,
            service_port=free_port(),
            service_password_file=services_passwd,
        )
    )
    broker.start()
    supervisor.adopt_pid("mosquitto", broker.pid or 0)

    influx: Influxd | None = None
    store_cfg: dict[str, object] = {"kind": "sqlite", "sqlite_path": str(workdir / "ts.sqlite")}
    if store == "influx":
        influx = Influxd(InfluxConfig(workdir=workdir / "influxd"))
        influx.start()
        store_cfg = {"kind": "influx", "influx": {"url": influx.url, "database": "cityops"}}

    api_port = free_port()
    config = {
        "database_url": db_url,
        "mqtt": {"host": broker.host, "port": broker.cfg.service_port, "username": API_USER,
                 "password": passwords[API_USER]},
        "store": store_cfg,
        "api": {
            "host": "127.0.0.1",
            "port": api_port,
            "sla_check_interval_s": 1.0,
            "broker_files": {
                "passwd": str(files.passwd),
                "acl": str(files.acl),
                "pid_file": str(files.pid_file),
                "services": passwords,
                "public_host": broker.host,
                "public_port": broker.port,
            },
        },
    }  # fmt: skip
    cfg_path = workdir / "cloud.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    cfg_path.chmod(0o600)
    supervisor.start("cloud", [sys.executable, "-m", "cityops", "cloud", "serve", "--config",
                               str(cfg_path)])  # fmt: skip
    api_url = f"http://127.0.0.1:{api_port}"
    _wait_http(f"{api_url}/healthz", supervisor)
    return Stack(workdir, broker, influx, api_url, keys, passwords, console_password)


def _wait_http(url: str, supervisor: Supervisor, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:  # noqa: PLR2004
                return
        except httpx.HTTPError:
            pass
        if not supervisor.alive("cloud"):
            raise RuntimeError(
                "the API process exited at start-up:\n" + supervisor.log_tail("cloud", 30)
            )
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
