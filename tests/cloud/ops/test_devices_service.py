"""DeviceService on real SQLite (state and event store) and once on PostgreSQL: registry, audit."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from cloud.broker.acl import AclSpec, ServiceRole, render_acl
from cloud.broker.registry import service_credentials, service_role
from cloud.db.devices import Device
from cloud.ops.audit import list_audit
from cloud.ops.clock import ManualClock
from cloud.ops.devices import DeviceFilter, DeviceService, DeviceUpsert
from cloud.ops.errors import ConflictError, NotFoundError
from cloud.ops.roles import Actor, Principal, Role
from cloud.runtime import build_runtime
from cloud.settings import ApiOptions, BrokerFilesSettings, CloudSettings, StoreSettings
from cloud.store.sqlite_ts import SqliteEventStore
from shared.commands import CommandName
from shared.config import DeviceConfig
from tests.cloud.ops.builders import event, ops_database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TECHNICIAN = Actor(name="rui (k2)", role="technician", source="10.0.0.8", user_agent="cli/1")
CIVIL = "civil-protection"
POLICE = "traffic-enforcement"


def body(department: str | None = None, site: str = "Largo do Carmo") -> DeviceUpsert:
    return DeviceUpsert(
        site=site, lat=38.712, lon=-9.14, device_type="raspberrypi5", department=department
    )


def principal(*departments: str, role: Role = Role.OPERATOR) -> Principal:
    return Principal(key_id="k1", name="ana", role=role, departments=frozenset(departments))


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    return ops_database(tmp_path / "ops.sqlite")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    events = SqliteEventStore(tmp_path / "ts.sqlite")
    await events.setup()
    yield events
    await events.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def devices(
    sessions: sessionmaker[Session], clock: ManualClock, store: SqliteEventStore
) -> DeviceService:
    return DeviceService(sessions, clock, store, CloudSettings())


def test_upsert_creates_then_updates_one_device_with_audit_rows(
    devices: DeviceService, sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    first = devices.upsert("cam-1", body(CIVIL), TECHNICIAN)
    clock.advance(timedelta(minutes=5))
    second = devices.upsert("cam-1", body(CIVIL, site="Rossio"), TECHNICIAN)
    assert (first.created, second.created) == (True, False)
    assert second.device.site == "Rossio"
    assert second.device.created_at == T0
    assert second.device.updated_at == T0 + timedelta(minutes=5)
    assert second.device.health == "never_seen"
    with sessions() as session:
        trail = list_audit(session, target_type="device", target_id="cam-1")
        assert session.query(Device).count() == 1
    assert [e.action for e in trail] == ["device.updated", "device.created"]
    assert trail[0].actor == TECHNICIAN.name
    assert trail[0].source == TECHNICIAN.source
    assert trail[0].detail["site"] == "Rossio"
    assert trail[1].detail["department"] == CIVIL


def test_list_shows_only_the_callers_departments_and_shared_devices(
    devices: DeviceService,
) -> None:
    devices.upsert("cam-a", body(CIVIL), TECHNICIAN)
    devices.upsert("cam-b", body(POLICE), TECHNICIAN)
    devices.upsert("cam-c", body(None), TECHNICIAN)

    def ids(who: Principal, **filters: object) -> list[str]:
        page = devices.list_devices(DeviceFilter.model_validate(filters), who)
        return [d.id for d in page.items]

    assert ids(principal(CIVIL)) == ["cam-a", "cam-c"]
    assert ids(principal(POLICE)) == ["cam-b", "cam-c"]
    assert ids(principal(role=Role.ADMIN)) == ["cam-a", "cam-b", "cam-c"]
    assert ids(principal("*")) == ["cam-a", "cam-b", "cam-c"]
    assert ids(principal(CIVIL), q="cam-b") == []


def test_list_pages_by_cursor_past_hidden_devices(devices: DeviceService) -> None:
    for n, department in enumerate([CIVIL, POLICE, CIVIL, POLICE, CIVIL]):
        devices.upsert(f"cam-{n}", body(department), TECHNICIAN)
    civil = principal(CIVIL)
    first = devices.list_devices(DeviceFilter(limit=2), civil)
    assert ([d.id for d in first.items], first.next_cursor) == (["cam-0", "cam-2"], "cam-2")
    rest = devices.list_devices(DeviceFilter(limit=2, cursor=first.next_cursor), civil)
    assert ([d.id for d in rest.items], rest.next_cursor) == (["cam-4"], None)


async def test_delete_is_refused_once_the_store_has_events_of_the_device(
    devices: DeviceService, store: SqliteEventStore
) -> None:
    devices.upsert("cam-1", body(), TECHNICIAN)
    await store.write_events([event(device_id="cam-1")])
    with pytest.raises(ConflictError) as refused:
        await devices.delete("cam-1", TECHNICIAN)
    assert refused.value.status == 409
    assert refused.value.field == "device_id"
    assert refused.value.detail == "device has events; revoke it instead"
    assert (await devices.get("cam-1")).id == "cam-1"


async def test_delete_is_refused_once_the_registry_saw_an_event(
    devices: DeviceService, sessions: sessionmaker[Session]
) -> None:
    devices.upsert("cam-1", body(), TECHNICIAN)
    with sessions() as session:
        row = session.get(Device, "cam-1")
        assert row is not None
        row.last_event_at = T0
        session.commit()
    with pytest.raises(ConflictError):
        await devices.delete("cam-1", TECHNICIAN)


async def test_delete_without_history_removes_the_registration(
    devices: DeviceService, sessions: sessionmaker[Session]
) -> None:
    devices.upsert("cam-1", body(), TECHNICIAN)
    await devices.delete("cam-1", TECHNICIAN)
    with pytest.raises(NotFoundError) as gone:
        await devices.get("cam-1")
    assert (gone.value.status, gone.value.field) == (404, "device_id")
    assert gone.value.detail == "no device 'cam-1'"
    with sessions() as session:
        trail = list_audit(session, target_type="device", target_id="cam-1")
    assert trail[0].action == "device.deleted"


def test_each_config_is_the_next_version(
    devices: DeviceService, sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    devices.upsert("cam-1", body(), TECHNICIAN)
    sent = DeviceConfig(device_id="cam-1", version=0)
    first = devices.put_config("cam-1", sent, TECHNICIAN)
    clock.advance(timedelta(seconds=30))
    second = devices.put_config("cam-1", sent, TECHNICIAN)
    assert (first.version, second.version) == (1, 2)
    assert second.issued_at == T0 + timedelta(seconds=30)
    stored = devices.get_config("cam-1")
    assert (stored.version, stored.acked_version) == (2, None)
    assert stored.config == second
    with sessions() as session:
        trail = list_audit(session, target_type="device", target_id="cam-1")
    assert [e.detail for e in trail if e.action == "device.config"] == [
        {"version": 2},
        {"version": 1},
    ]
    with pytest.raises(NotFoundError):
        devices.put_config("cam-2", sent.model_copy(update={"device_id": "cam-2"}), TECHNICIAN)


def test_credentials_reach_the_broker_files_and_a_revoked_device_gets_none(
    sessions: sessionmaker[Session], clock: ManualClock, store: SqliteEventStore, tmp_path: Path
) -> None:
    files = BrokerFilesSettings(
        passwd=tmp_path / "passwd",
        acl=tmp_path / "acl",
        services={"cityops-ingest": SecretStr("ingest-pw"), "cityops-api": SecretStr("api-pw")},
        public_host="broker.example",
    )
    settings = CloudSettings(api=ApiOptions(broker_files=files))
    devices = DeviceService(sessions, clock, store, settings)
    devices.upsert("cam-1", body(), TECHNICIAN)
    creds = devices.issue_credentials("cam-1", TECHNICIAN)
    assert (creds.username, creds.host, creds.port) == ("cam-1", "broker.example", 1883)
    users = {line.split(":")[0] for line in files.passwd.read_text().splitlines()}
    assert users == {"cam-1", "cityops-ingest", "cityops-api"}

    assert devices.revoke("cam-1", TECHNICIAN).revoked
    users = {line.split(":")[0] for line in files.passwd.read_text().splitlines()}
    assert "cam-1" not in users
    with pytest.raises(ConflictError) as refused:
        devices.issue_credentials("cam-1", TECHNICIAN)
    assert refused.value.detail == "device is revoked; register a new device id"


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("cityops-ingest", ServiceRole.INGEST),
        ("cityops-admin", ServiceRole.ADMIN),
        ("cityops-api", ServiceRole.SERVE),
        ("cityops-dispatch", ServiceRole.DISPATCH),
        ("home-assistant-incidents", ServiceRole.INCIDENTS),
    ],
)
def test_service_role_by_account_name(name: str, role: ServiceRole) -> None:
    assert service_role(name) is role


def test_incident_readers_read_their_departments_only() -> None:
    passwords = {"cityops-dispatch": SecretStr("d"), "ha-parking": SecretStr("h")}
    creds = service_credentials(passwords, {}, {"ha-parking": ["traffic-enforcement"]})
    acl = render_acl(AclSpec(services=[c.account for c in creds]))
    assert "user cityops-dispatch\ntopic write cityops/incidents/v1/#\n" in acl
    assert "user ha-parking\ntopic read cityops/incidents/v1/traffic-enforcement/+\n" in acl
    with pytest.raises(ValueError, match="incident_readers: 'nobody' is not in services"):
        service_credentials(passwords, {}, {"nobody": ["x"]})


def test_command_is_recorded_and_its_ack_missing_until_it_arrives(
    devices: DeviceService, sessions: sessionmaker[Session]
) -> None:
    devices.upsert("cam-1", body(), TECHNICIAN)
    command = devices.record_command(
        "cam-1", CommandName.SNAPSHOT, TECHNICIAN, camera_id="cam-1", args={"width": 640}
    )
    assert (command.issued_at, command.args) == (T0, {"width": 640})
    with pytest.raises(NotFoundError) as missing:
        devices.command_ack("cam-1", command.id)
    assert missing.value.field == "command_id"
    with sessions() as session:
        trail = list_audit(session, target_type="device", target_id="cam-1")
    assert trail[0].action == "device.command.snapshot"
    assert trail[0].detail == {"command_id": command.id}
    with pytest.raises(NotFoundError):
        devices.record_command("cam-2", CommandName.RELOAD, TECHNICIAN)


@pytest.mark.services
async def test_runtime_devices_on_postgres(postgres_db: str, tmp_path: Path) -> None:
    settings = CloudSettings(
        database_url=postgres_db,
        store=StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite"),
    )
    runtime = build_runtime(settings, clock=ManualClock(T0))
    await runtime.store.setup()
    try:
        devices = runtime.devices
        assert devices.upsert("cam-a", body(CIVIL), TECHNICIAN).created
        assert not devices.upsert("cam-a", body(CIVIL), TECHNICIAN).created
        devices.upsert("cam-b", body(POLICE), TECHNICIAN)
        page = devices.list_devices(DeviceFilter(), principal(CIVIL))
        assert [d.id for d in page.items] == ["cam-a"]
        config = devices.put_config("cam-a", DeviceConfig(device_id="cam-a", version=0), TECHNICIAN)
        assert config.version == 1
        await runtime.store.write_events([event(device_id="cam-a")])
        with pytest.raises(ConflictError):
            await devices.delete("cam-a", TECHNICIAN)
        await devices.delete("cam-b", TECHNICIAN)
        with runtime.sessions() as session:
            actions = [e.action for e in list_audit(session, target_type="device")]
        assert actions == [
            "device.deleted",
            "device.config",
            "device.created",
            "device.updated",
            "device.created",
        ]
    finally:
        await runtime.close()
