"""``DeviceService``: the device registry, broker credentials, desired configs, command records.

Every change is committed together with its audit row. Devices' broker credentials reach
Mosquitto by regenerating its password and ACL files (``sync_broker_files``); the MQTT side of
configs and commands (publish, wait for the ack) is the API's (``cloud.api.routes.devices``).
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.broker.passwords import hash_password, new_password, read_password_file
from cloud.broker.registry import BrokerFiles, service_credentials, sync_broker
from cloud.db.devices import Device
from cloud.db.ops import CommandRecord, Incident
from cloud.ops import audit
from cloud.ops.clock import Clock
from cloud.ops.errors import ConflictError, NotFoundError
from cloud.ops.roles import Actor, Principal
from cloud.settings import BrokerFilesSettings, CloudSettings
from cloud.store.base import EventQuery, EventStore
from shared.commands import Command, CommandAck, CommandName
from shared.config import DeviceConfig
from shared.ids import new_id
from shared.telemetry import CameraState, Telemetry

Health = Literal["ok", "camera_down", "silent", "offline", "never_seen"]
CommandArgs = Mapping[str, str | int | float | bool]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class DeviceUpsert(_In):
    site: Annotated[str, StringConstraints(max_length=128)] = Field(examples=["Praça do Comércio"])
    lat: float = Field(ge=-90, le=90, examples=[38.7075])
    lon: float = Field(ge=-180, le=180, examples=[-9.1365])
    device_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        examples=["raspberrypi5"]
    )
    fleet: Annotated[str, StringConstraints(max_length=128)] | None = None
    department: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = (
        None
    )
    note: Annotated[str, StringConstraints(max_length=2000)] = ""
    balena_uuid: Annotated[str, StringConstraints(max_length=64)] | None = None


class DeviceOut(_Out):
    id: str
    site: str
    device_type: str
    fleet: str | None
    department: str | None
    lat: float | None
    lon: float | None
    note: str
    balena_uuid: str | None
    revoked: bool
    online: bool
    last_seen: datetime | None
    last_telemetry_at: datetime | None
    last_event_at: datetime | None
    health: Health
    blind_spot: bool = Field(description="True when the device cannot see: camera down, silent.")
    config_version: int
    config_acked_version: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Device, now: datetime, silent_after_s: float) -> "DeviceOut":
        health = device_health(row, now, silent_after_s)
        return cls(
            id=row.id,
            site=row.site,
            device_type=row.device_type,
            fleet=row.fleet,
            department=row.department,
            lat=row.lat,
            lon=row.lon,
            note=row.note,
            balena_uuid=row.balena_uuid,
            revoked=row.revoked,
            online=row.online,
            last_seen=row.last_seen,
            last_telemetry_at=row.last_telemetry_at,
            last_event_at=row.last_event_at,
            health=health,
            blind_spot=health in {"camera_down", "silent", "offline"} and not row.revoked,
            config_version=row.config_version,
            config_acked_version=row.config_acked_version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def device_health(row: Device, now: datetime, silent_after_s: float) -> Health:
    if row.last_seen is None:
        return "never_seen"
    if not row.online:
        return "offline"
    if now - row.last_seen > timedelta(seconds=silent_after_s):
        return "silent"
    telemetry = row.last_telemetry or {}
    cameras = telemetry.get("cameras") or []
    if any(c.get("state") == CameraState.DOWN.value for c in cameras if isinstance(c, dict)):
        return "camera_down"
    return "ok"


class DeviceDetail(DeviceOut):
    telemetry: list[Telemetry] = Field(description="Most recent first.")
    config: DeviceConfig | None


class DevicePage(_Out):
    items: list[DeviceOut]
    next_cursor: str | None = None


class DeviceFilter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    site: str | None = None
    online: bool | None = None
    device_type: str | None = None
    q: str | None = None
    """Substring of the id, site or note."""
    blind_spot: bool | None = None
    cursor: str | None = None
    """The last device id of the previous page."""
    limit: int = Field(default=100, ge=1, le=500)


class Upserted(_Out):
    device: DeviceOut
    created: bool


class MqttCredentials(_Out):
    username: str
    password: str = Field(description="Shown only in this response; store it on the device.")
    host: str
    port: int
    tls_port: int | None


class ConfigOut(_Out):
    config: DeviceConfig | None
    version: int
    acked_version: int | None
    ack_message: str


def sync_broker_files(session: Session, files: BrokerFilesSettings | None) -> None:
    """Rewrite the broker's password and ACL files from the registry (if the API manages them).

    The same accounts and roles as ``cityops cloud broker sync``; an unchanged file is not
    rewritten.
    """
    if files is None:
        return
    services = service_credentials(
        files.services, read_password_file(files.passwd), files.incident_readers
    )
    sync_broker(session, BrokerFiles(files.passwd, files.acl, files.pid_file), services)


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    device_id: str,
    at: datetime,
    *,
    detail: Mapping[str, object] | None = None,
) -> None:
    audit.record(
        session,
        actor,
        action=action,
        target_type="device",
        target_id=device_id,
        at=at,
        detail=detail,
    )


def _get(session: Session, device_id: str) -> Device:
    row = session.get(Device, device_id)
    if row is None:
        raise NotFoundError(f"no device {device_id!r}", field="device_id")
    return row


class DeviceService:
    """Reads the registry as the API shows it; every change with its audit row.

    *store* answers whether a device ever sent events (``delete``) and its recent telemetry;
    *settings* give the silence limit, the broker files and the broker address for devices.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        store: EventStore,
        settings: CloudSettings,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.store = store
        self.settings = settings

    def _out(self, row: Device) -> DeviceOut:
        return DeviceOut.of(row, self.clock.now(), self.settings.api.silent_after_s)

    def _sync_broker(self, session: Session) -> None:
        sync_broker_files(session, self.settings.api.broker_files)

    # ------------------------------------------------------------------ reads

    def list_devices(self, query: DeviceFilter, principal: Principal) -> DevicePage:
        """Devices in *principal*'s departments, by id; health and blind spots from telemetry."""
        stmt = select(Device).order_by(Device.id)
        if query.site is not None:
            stmt = stmt.where(Device.site == query.site)
        if query.device_type is not None:
            stmt = stmt.where(Device.device_type == query.device_type)
        if query.q:
            like = f"%{query.q}%"
            stmt = stmt.where(
                or_(Device.id.like(like), Device.site.like(like), Device.note.like(like))
            )
        if query.cursor:
            stmt = stmt.where(Device.id > query.cursor)
        items: list[DeviceOut] = []
        more = False
        with self.sessions() as session:
            for row in session.scalars(stmt):
                if not principal.sees(row.department):
                    continue
                out = self._out(row)
                if query.online is not None and out.online != query.online:
                    continue
                if query.blind_spot is not None and out.blind_spot != query.blind_spot:
                    continue
                if len(items) == query.limit:
                    more = True
                    break
                items.append(out)
        return DevicePage(items=items, next_cursor=items[-1].id if more and items else None)

    async def get(self, device_id: str, *, telemetry: int = 0) -> DeviceDetail:
        """One device with its *telemetry* most recent reports and its desired config."""
        with self.sessions() as session:
            row = _get(session, device_id)
            out = self._out(row)
            config = DeviceConfig.model_validate(row.config) if row.config else None
        recent = await self.store.recent_telemetry(device_id, telemetry) if telemetry else []
        return DeviceDetail(**out.model_dump(), telemetry=recent, config=config)

    def get_config(self, device_id: str) -> ConfigOut:
        """The desired config and the version the device acknowledged."""
        with self.sessions() as session:
            row = _get(session, device_id)
            return ConfigOut(
                config=DeviceConfig.model_validate(row.config) if row.config else None,
                version=row.config_version,
                acked_version=row.config_acked_version,
                ack_message=row.config_ack_message,
            )

    def command_ack(self, device_id: str, command_id: str) -> CommandAck:
        """The device's acknowledgement of a command (``NotFoundError`` until it arrives)."""
        with self.sessions() as session:
            record = session.get(CommandRecord, command_id)
            if record is None or record.device_id != device_id or record.ack is None:
                raise NotFoundError(
                    f"no acknowledgement for {command_id!r} yet", field="command_id"
                )
            return CommandAck.model_validate_json(record.ack)

    # ------------------------------------------------------------------ registry

    def upsert(self, device_id: str, body: DeviceUpsert, actor: Actor) -> Upserted:
        """Register or update a device; the same body twice leaves one device."""
        now = self.clock.now()
        with self.sessions() as session:
            row = session.get(Device, device_id)
            created = row is None
            if row is None:
                row = Device(id=device_id, created_at=now)
                session.add(row)
            changes = body.model_dump()
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = now
            action = "device.created" if created else "device.updated"
            _audit(session, actor, action, device_id, now, detail=changes)
            session.commit()
            return Upserted(device=self._out(row), created=created)

    def issue_credentials(self, device_id: str, actor: Actor) -> MqttCredentials:
        """A new MQTT password for the device (rotating any previous one); the broker reloads."""
        password = new_password()
        with self.sessions() as session:
            row = _get(session, device_id)
            if row.revoked:
                raise ConflictError(
                    "device is revoked; register a new device id", field="device_id"
                )
            row.mqtt_password_hash = hash_password(password)
            row.updated_at = self.clock.now()
            _audit(session, actor, "device.credentials", device_id, row.updated_at)
            session.commit()
            self._sync_broker(session)
        files = self.settings.api.broker_files
        mqtt = self.settings.mqtt
        return MqttCredentials(
            username=device_id,
            password=password,
            host=files.public_host if files else mqtt.host,
            port=files.public_port if files else mqtt.port,
            tls_port=files.public_tls_port if files else None,
        )

    def revoke(self, device_id: str, actor: Actor) -> DeviceOut:
        """Remove the device's broker credentials; its events and incidents are kept."""
        with self.sessions() as session:
            row = _get(session, device_id)
            now = self.clock.now()
            row.revoked = True
            row.revoked_at = now
            row.mqtt_password_hash = None
            row.updated_at = now
            _audit(session, actor, "device.revoked", device_id, now)
            session.commit()
            self._sync_broker(session)
            return self._out(row)

    async def delete(self, device_id: str, actor: Actor) -> None:
        """Remove a registration with no history yet (``ConflictError`` once it has events)."""
        with self.sessions() as session:
            row = _get(session, device_id)
            has_incident = session.scalars(
                select(Incident.id).where(Incident.device_id == device_id).limit(1)
            ).first()
            had_events = row.last_event_at is not None or has_incident is not None
        if not had_events:
            page = await self.store.query_events(EventQuery(device_ids=[device_id], limit=1))
            had_events = bool(page.items)
        if had_events:
            raise ConflictError("device has events; revoke it instead", field="device_id")
        with self.sessions() as session:
            row = _get(session, device_id)
            session.delete(row)
            _audit(session, actor, "device.deleted", device_id, self.clock.now())
            session.commit()
            self._sync_broker(session)

    # ------------------------------------------------------------------ configs and commands

    def put_config(self, device_id: str, body: DeviceConfig, actor: Actor) -> DeviceConfig:
        """Store *body* as the device's next config version; the stored config is returned."""
        now = self.clock.now()
        with self.sessions() as session:
            row = _get(session, device_id)
            version = row.config_version + 1
            config = body.model_copy(update={"version": version, "issued_at": now})
            row.config = config.model_dump(mode="json", exclude_none=True)
            row.config_version = version
            row.updated_at = now
            _audit(session, actor, "device.config", device_id, now, detail={"version": version})
            session.commit()
        return config

    def record_command(
        self,
        device_id: str,
        name: CommandName,
        actor: Actor,
        *,
        camera_id: str | None = None,
        args: CommandArgs | None = None,
    ) -> Command:
        """A new command for the device, recorded (to match its ack) and audited, not sent."""
        now = self.clock.now()
        command = Command(
            id=new_id(),
            device_id=device_id,
            name=name,
            issued_at=now,
            camera_id=camera_id,
            args=dict(args or {}),
        )
        with self.sessions() as session:
            _get(session, device_id)
            session.add(
                CommandRecord(
                    id=command.id,
                    device_id=device_id,
                    name=command.name.value,
                    issued_at=now,
                    issued_by=actor.name,
                )
            )
            action = f"device.command.{command.name.value}"
            _audit(session, actor, action, device_id, now, detail={"command_id": command.id})
            session.commit()
        return command
