"""Fixtures: the real SQLite event store and the real ``OpsService`` behind a connector writer."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

import cloud.db.devices
import cloud.db.ops  # noqa: F401 - registers the ops tables
from cloud.connectors.writer import StoreEventWriter
from cloud.db.base import Base, make_engine, make_sessionmaker
from cloud.ops.models import IncidentChange
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import OpsService
from cloud.store.sqlite_ts import SqliteEventStore

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
    Base.metadata.create_all(engine)
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
