"""Fixtures: the real SQLite event store and the real ``OpsService`` behind a connector writer."""

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.broker.passwords import hash_password, password_file
from cloud.connectors.writer import StoreEventWriter
from cloud.db.base import make_engine, make_sessionmaker
from cloud.db.tables import create_all
from cloud.ops.models import IncidentChange
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import OpsService
from cloud.services.mosquitto import Mosquitto, MosquittoConfig, TlsListener
from cloud.store.sqlite_ts import SqliteEventStore
from tests.conftest import need

ROUTING = {
    "timezone": "Europe/Lisbon",
    "departments": [
        {"id": "public-space", "name": "Public space"},
        {"id": "environment", "name": "Environment"},
        {"id": "traffic-enforcement", "name": "Traffic"},
    ],
    "rules": [
        {"name": "partner-reports", "kinds": ["external"], "department": "public-space"},
        {"name": "air", "kinds": ["sensor_threshold"], "department": "environment"},
        {"name": "parking", "kinds": ["illegal_parking"], "department": "traffic-enforcement"},
    ],
}


@dataclass
class Pipeline:
    """The real store and incident service that connectors write to, as in ``cloud serve``."""

    store: SqliteEventStore
    ops: OpsService
    writer: StoreEventWriter
    sessions: sessionmaker[Session]
    changes: list[IncidentChange] = field(default_factory=list)


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    create_all(engine)
    sessions: sessionmaker[Session] = make_sessionmaker(engine)
    ops = OpsService(sessions, Router(RoutingConfig.model_validate(ROUTING)))
    store = SqliteEventStore(tmp_path / "ts.sqlite")
    await store.setup()
    pipe = Pipeline(
        store=store, ops=ops, writer=StoreEventWriter(store, [ops.on_events]), sessions=sessions
    )

    async def collect(change: IncidentChange) -> None:
        pipe.changes.append(change)

    ops.add_listener(collect)
    yield pipe
    await store.close()
    engine.dispose()


@dataclass(frozen=True)
class PartnerBroker:
    """A partner's own Mosquitto (not the CityOps one): ``partner`` publishes, ``bridge`` reads."""

    server: Mosquitto
    users: dict[str, str]

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port


def start_partner_broker(workdir: Path, tls: TlsListener | None = None) -> PartnerBroker:
    need(shutil.which("mosquitto") is not None, "mosquitto (apt-get install mosquitto)")
    workdir.mkdir(parents=True, exist_ok=True)
    users = {"partner": "partner-pw", "bridge": "bridge-pw"}
    (workdir / "passwd").write_text(password_file({u: hash_password(p) for u, p in users.items()}))
    (workdir / "acl").write_text(
        "user partner\ntopic write partner/#\n\nuser bridge\ntopic read partner/#\n"
    )
    server = Mosquitto(
        MosquittoConfig(
            workdir=workdir, password_file=workdir / "passwd", acl_file=workdir / "acl", tls=tls
        )
    )
    server.start()
    return PartnerBroker(server=server, users=users)


@pytest.fixture(scope="session")
def partner_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerBroker]:
    broker = start_partner_broker(tmp_path_factory.mktemp("partner-broker"))
    yield broker
    broker.server.stop()


@pytest.fixture
def partner_broker_factory(tmp_path: Path) -> Iterator[Callable[..., PartnerBroker]]:
    """Fresh partner brokers (optionally with a TLS listener) for stop/restart and TLS tests."""
    started: list[PartnerBroker] = []

    def make(tls: TlsListener | None = None) -> PartnerBroker:
        broker = start_partner_broker(tmp_path / f"partner-{len(started)}", tls)
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.server.stop()
