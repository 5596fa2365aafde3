"""SQL state on the harness's real PostgreSQL: the runner, ingest state, ops tables, ingestor."""

import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session

from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.ingest import DeadLetter, RejectReason, SeenEvent
from cloud.db.ops import ApiKey, AuditEntry, Incident, IncidentEvent
from cloud.db.tables import create_all
from cloud.ingest.batch import DeviceUpdate, Received, Rejection
from cloud.ingest.state import IngestState
from cloud.services.postgres import Postgres, PostgresConfig
from cloud.settings import StoreSettings
from shared.clock import utcnow
from shared.ids import new_id
from shared.topics import Channel, topic
from tests.cloud.ingest.conftest import eventually, make_settings, run_ingestor
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.store.factories import make_config_ack, make_event, make_telemetry
from tests.conftest import Broker


@pytest.fixture
def engine(postgres_db: str) -> Iterator[Engine]:
    eng = make_engine(postgres_db)
    create_all(eng)
    yield eng
    eng.dispose()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def test_the_server_runs_unprivileged_and_survives_a_kill() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cityops-postgres-"))
    # Commits are flushed before they are acknowledged, so a killed server keeps them.
    cfg = PostgresConfig(workdir=workdir, fsync=False, settings={"synchronous_commit": "on"})
    server = Postgres(cfg)
    try:
        assert server.bindir.parent.name.isdigit()  # /usr/lib/postgresql/<major>/bin
        server.start()
        assert server.pid is not None
        uid = int(Path(f"/proc/{server.pid}/status").read_text().split("Uid:")[1].split()[0])
        expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
        assert uid == expected
        assert (workdir / "socket" / f".s.PGSQL.{server.port}").exists()
        url = server.create_database("crash")
        eng = make_engine(url)
        create_all(eng)
        IngestState(eng).commit([kept := new_id()], [], [])
        eng.dispose()

        server.kill()  # the next start recovers the cluster from its WAL
        assert not _accepts(server.host, server.port)
        server.start()
        eng = make_engine(url)
        assert IngestState(eng).known_ids([kept]) == {kept}
        eng.dispose()
        server.stop()
        assert not server.running
        assert not _accepts(server.host, server.port)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _rejection(i: int, payload: bytes) -> Rejection:
    now = utcnow()
    msg = Received("cityops/v1/dev-a/event", payload, qos=1, mid=i, generation=1, received_at=now)
    return Rejection(msg, RejectReason.INVALID_JSON, None, f"bad {i}", "dev-a")


def test_ingest_state_end_to_end(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= {
        "devices",
        "dead_letters",
        "ingest_seen_events",
        "incidents",
        "incident_events",
        "audit_log",
        "api_keys",
    }
    create_all(engine)  # idempotent on a server database too
    state = IngestState(engine)
    now = utcnow()
    old = [new_id(at_ms=int((now - timedelta(days=8)).timestamp() * 1000)) for _ in range(5)]
    fresh = [new_id() for _ in range(1200)]  # more than one IN (...) chunk for known_ids
    state.commit(old + fresh[:700], [_rejection(i, b"x" * 10) for i in range(30)], [])
    state.commit(fresh[600:], [], [])  # 100 already stored: skipped without an error
    assert state.known_ids([*old, *fresh, new_id()]) == {*old, *fresh}
    assert state.forget_before(now - timedelta(days=7)) == 5
    assert state.known_ids(old) == set()

    assert state.trim_dead_letters(keep=10) == 20
    with Session(engine) as s:
        kept = s.scalars(select(DeadLetter.detail).order_by(DeadLetter.id)).all()
        assert kept == [f"bad {i}" for i in range(20, 30)]
        assert s.scalar(select(func.count()).select_from(SeenEvent)) == 1200

    # Device registry: inserted, then moved forward; a late update never moves it back.
    early, late = now - timedelta(seconds=30), now - timedelta(seconds=1)
    state.commit([], [], [DeviceUpdate("dev-a", late, last_telemetry=make_telemetry(ts=late))])
    state.commit(
        [],
        [],
        [
            DeviceUpdate("dev-a", early, online=True, last_status_at=early),
            DeviceUpdate("dev-b", early, config_acked_version=3, config_ack_message="ok"),
        ],
    )
    with Session(engine) as s:
        a, b = s.get_one(Device, "dev-a"), s.get_one(Device, "dev-b")
    assert a.last_seen == late  # aware UTC, microseconds kept
    assert a.last_seen.tzinfo is not None
    assert a.last_telemetry_at == late
    assert a.last_telemetry is not None
    assert a.last_telemetry["device_id"] == "dev-a"
    assert (a.online, a.last_status_at) == (True, early)
    assert (b.config_acked_version, b.config_ack_message) == (3, "ok")


def test_nul_characters_from_devices_do_not_fail_the_commit(engine: Engine) -> None:
    """PostgreSQL text cannot hold U+0000: a commit with one would fail on every retry."""
    ack = DeviceUpdate("dev-a", utcnow(), config_acked_version=1, config_ack_message="a\x00b")
    IngestState(engine).commit([new_id()], [_rejection(1, b"\x00\xffgarbage\x00")], [ack])
    with Session(engine) as s:
        assert s.scalars(select(DeadLetter.payload)).one() == "\ufffd\ufffdgarbage\ufffd"
        assert s.get_one(Device, "dev-a").config_ack_message == "a\ufffdb"


def test_ops_tables(engine: Engine) -> None:
    now = utcnow()
    incident_id = new_id()
    with Session(engine) as s, s.begin():
        s.add(
            Incident(
                id=incident_id,
                kind="traffic",
                department="transport",
                rule="stalled-vehicle",
                severity="high",
                device_id="dev-a",
                situation_key="dev-a/cam0/zone-1",
                first_event_id=(e1 := new_id()),
                last_event_id=e1,
                last_event_at=now,
                opened_at=now,
                checklist=[{"step": "call", "done": False}],
            )
        )
        s.flush()
        s.add(IncidentEvent(event_id=e1, incident_id=incident_id, phase="start", observed_at=now))
        s.add_all(
            AuditEntry(
                at=now,
                actor="admin",
                role="admin",
                action=f"act-{i}",
                target_type="incident",
                target_id=incident_id,
                detail={"i": i},
            )
            for i in range(3)
        )
        s.add(ApiKey(id="k1", name="desk", role="admin", departments=["transport"], secret_hash=""))
    with Session(engine) as s, s.begin():
        incident = s.get_one(Incident, incident_id)
        assert incident.checklist == [{"step": "call", "done": False}]
        assert incident.opened_at == now
        assert [a.id for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [1, 2, 3]
        assert s.get_one(ApiKey, "k1").departments == ["transport"]
        s.delete(incident)
    with Session(engine) as s:  # ON DELETE CASCADE is enforced by the server
        assert s.scalars(select(IncidentEvent)).all() == []


@pytest.fixture
def device(mosquitto: Broker) -> Iterator[Publisher]:
    with Publisher(mosquitto.host, mosquitto.port, "dev-a", "dev-a-pw") as pub:
        yield pub


@pytest.fixture
def admin(mosquitto: Broker) -> Iterator[Publisher]:
    with Publisher(mosquitto.host, mosquitto.port, "cityops-admin", "admin-pw") as pub:
        yield pub


async def test_the_ingestor_keeps_its_state_in_postgresql(
    mosquitto: Broker, postgres_db: str, tmp_path: Path, device: Publisher, admin: Publisher
) -> None:
    store = StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite")
    settings = make_settings(mosquitto, store, tmp_path, "postgres-state")
    settings = settings.model_copy(update={"database_url": postgres_db})
    async with run_ingestor(settings) as running:
        assert running.engine.dialect.name == "postgresql"
        # Garbage with U+0000 first: the batch's commit must not fail on it. An ack whose message
        # holds U+0000 is refused by the contract (a dead letter naming the field).
        admin.raw(topic("dev-a", Channel.EVENT), b"\x00garbage")
        admin.flush()
        ack = make_config_ack(version=7).model_copy(update={"message": "nul\x00"})
        device.send(ack, Channel.CMD_ACK)
        events = [make_event() for _ in range(40)]
        for e in events:
            device.send(e, Channel.EVENT)
            device.send(e, Channel.EVENT)  # each twice: stored once
        device.flush()
        await running.wait_stored(40)

        async def all_handled() -> bool:
            stats = running.ingestor.stats()
            return stats.stored_events + stats.duplicates >= 80

        await eventually(all_handled, 10, "80 messages")
        assert await running.stored() == 40
        assert running.ingestor.stats().duplicates == 40
        assert sorted(e.id for b in running.hooked for e in b) == sorted(e.id for e in events)
        with Session(running.engine) as s:
            assert set(s.scalars(select(SeenEvent.id))) == {e.id for e in events}
            dev = s.get_one(Device, "dev-a")
            assert dev.last_event_at is not None
            assert dev.config_acked_version is None  # the refused ack changed nothing
            letters = dict(s.execute(select(DeadLetter.field, DeadLetter.payload)).all())
            assert letters.pop("message").startswith("{")  # the ack, refused by the contract
            assert list(letters.values()) == ["\ufffdgarbage"]
