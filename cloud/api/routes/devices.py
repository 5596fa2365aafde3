"""Devices: registry, health, MQTT credentials, configuration (zones) and commands."""

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.api.context import ApiContext
from cloud.api.deps import Ctx, DevicePath, DeviceScope, Require, check_device_scope
from cloud.api.problems import ApiError, Problem
from cloud.api.schemas import (
    CommandAccepted,
    CommandRequest,
    ConfigAccepted,
    ConfigOut,
    DeviceDetail,
    DeviceOut,
    DevicePage,
    DeviceUpsert,
    MqttCredentials,
)
from cloud.api.settings import BrokerFilesSettings
from cloud.broker.acl import ServiceAccount
from cloud.broker.passwords import hash_password, new_password
from cloud.broker.registry import BrokerFiles, ServiceCredential, sync_broker
from cloud.broker.registry import service_role as _service_role
from cloud.db.devices import Device
from cloud.db.ops import CommandRecord, Incident
from cloud.ops import audit
from cloud.ops.errors import UnavailableError
from cloud.ops.roles import Actor, Permission, Principal
from cloud.store.base import EventQuery
from shared.codec import encode
from shared.commands import Command, CommandAck, CommandName
from shared.config import DeviceConfig
from shared.ids import new_id
from shared.topics import Channel, topic

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem},
    403: {"model": Problem},
    404: {"model": Problem},
}
_PAGE_MAX = 500

WriteDevice = Annotated[Principal, Depends(DeviceScope(Permission.DEVICES_WRITE))]
ConfigDevice = Annotated[Principal, Depends(DeviceScope(Permission.DEVICES_CONFIG))]


def _actor(request: Request, principal: Principal) -> Actor:
    source = request.client.host if request.client else ""
    return Actor.of(principal, source=source, user_agent=request.headers.get("user-agent", ""))


def _out(ctx: ApiContext, row: Device) -> DeviceOut:
    return DeviceOut.of(row, ctx.clock.now(), ctx.settings.api.silent_after_s)


def _get(session: Session, device_id: str) -> Device:
    row = session.get(Device, device_id)
    if row is None:
        raise ApiError(404, f"no device {device_id!r}", field="device_id")
    return row


@router.get("", responses=_ERRORS)
def list_devices(
    *,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(Require(Permission.DEVICES_READ))],
    site: Annotated[str | None, Query(max_length=128)] = None,
    online: bool | None = None,
    device_type: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[
        str | None, Query(max_length=128, description="Substring of id/site/note.")
    ] = None,
    blind_spot: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=_PAGE_MAX)] = 100,
) -> DevicePage:
    """Devices in the caller's departments, by id; health and blind spots from telemetry."""
    stmt = select(Device).order_by(Device.id)
    if site is not None:
        stmt = stmt.where(Device.site == site)
    if device_type is not None:
        stmt = stmt.where(Device.device_type == device_type)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Device.id.like(like), Device.site.like(like), Device.note.like(like)))
    if cursor:
        stmt = stmt.where(Device.id > cursor)
    items: list[DeviceOut] = []
    more = False
    with ctx.sessions() as session:
        for row in session.scalars(stmt):
            if not principal.sees(row.department):
                continue
            out = _out(ctx, row)
            if online is not None and out.online != online:
                continue
            if blind_spot is not None and out.blind_spot != blind_spot:
                continue
            if len(items) == limit:
                more = True
                break
            items.append(out)
    return DevicePage(items=items, next_cursor=items[-1].id if more and items else None)


@router.get(
    "/{device_id}",
    responses=_ERRORS,
    dependencies=[Depends(DeviceScope(Permission.DEVICES_READ))],
)
async def get_device(
    *,
    ctx: Ctx,
    device_id: DevicePath,
    telemetry: Annotated[int, Query(ge=0, le=100, description="Recent telemetry items.")] = 10,
) -> DeviceDetail:
    """One device with its recent telemetry, cameras and desired config."""
    with ctx.sessions() as session:
        row = _get(session, device_id)
        out = _out(ctx, row)
        config = DeviceConfig.model_validate(row.config) if row.config else None
    recent = await ctx.store.recent_telemetry(device_id, telemetry) if telemetry else []
    return DeviceDetail(**out.model_dump(), telemetry=recent, config=config)


@router.put(
    "/{device_id}",
    responses={**_ERRORS, 200: {"model": DeviceOut}, 201: {"model": DeviceOut}},
    status_code=200,
)
def upsert_device(
    *,
    ctx: Ctx,
    request: Request,
    device_id: DevicePath,
    body: DeviceUpsert,
    principal: WriteDevice,
    response: Response,
) -> DeviceOut:
    """Register (201) or update (200) a device; the same body twice leaves one device."""
    if not principal.sees(body.department):
        raise ApiError(403, f"department {body.department!r} is out of scope", field="department")
    now = ctx.clock.now()
    with ctx.sessions() as session:
        row = session.get(Device, device_id)
        created = row is None
        if row is None:
            row = Device(id=device_id, created_at=now)
            session.add(row)
        changes = body.model_dump()
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = now
        audit.record(
            session,
            _actor(request, principal),
            action="device.created" if created else "device.updated",
            target_type="device",
            target_id=device_id,
            at=now,
            detail=changes,
        )
        session.commit()
        ctx.live.device_departments[device_id] = row.department
        response.status_code = 201 if created else 200
        return _out(ctx, row)


def _sync_broker(session: Session, files: BrokerFilesSettings | None) -> None:
    if files is None:
        return
    services = [
        ServiceCredential(
            ServiceAccount(name, _service_role(name)), hash_password(pw.get_secret_value())
        )
        for name, pw in files.services.items()
    ]
    sync_broker(session, BrokerFiles(files.passwd, files.acl, files.pid_file), services)


@router.post("/{device_id}/credentials", responses={**_ERRORS, 409: {"model": Problem}})
def issue_credentials(
    *, ctx: Ctx, request: Request, device_id: DevicePath, principal: WriteDevice
) -> MqttCredentials:
    """New MQTT password for the device (rotates any previous one); the broker reloads."""
    password = new_password()
    with ctx.sessions() as session:
        row = _get(session, device_id)
        if row.revoked:
            raise ApiError(409, "device is revoked; register a new device id", field="device_id")
        row.mqtt_password_hash = hash_password(password)
        row.updated_at = ctx.clock.now()
        audit.record(
            session,
            _actor(request, principal),
            action="device.credentials",
            target_type="device",
            target_id=device_id,
            at=row.updated_at,
        )
        session.commit()
        _sync_broker(session, ctx.settings.api.broker_files)
    files = ctx.settings.api.broker_files
    mqtt = ctx.settings.cloud.mqtt
    return MqttCredentials(
        username=device_id,
        password=password,
        host=files.public_host if files else mqtt.host,
        port=files.public_port if files else mqtt.port,
        tls_port=files.public_tls_port if files else None,
    )


@router.post("/{device_id}/revoke", responses=_ERRORS)
def revoke_device(
    *, ctx: Ctx, request: Request, device_id: DevicePath, principal: WriteDevice
) -> DeviceOut:
    """Remove the device's broker credentials; its events and incidents are kept."""
    with ctx.sessions() as session:
        row = _get(session, device_id)
        now = ctx.clock.now()
        row.revoked = True
        row.revoked_at = now
        row.mqtt_password_hash = None
        row.updated_at = now
        audit.record(
            session,
            _actor(request, principal),
            action="device.revoked",
            target_type="device",
            target_id=device_id,
            at=now,
        )
        session.commit()
        _sync_broker(session, ctx.settings.api.broker_files)
        return _out(ctx, row)


@router.delete("/{device_id}", status_code=204, responses={**_ERRORS, 409: {"model": Problem}})
async def delete_device(
    *, ctx: Ctx, request: Request, device_id: DevicePath, principal: WriteDevice
) -> Response:
    """Remove a registration with no history yet (rolls back a half-done provisioning)."""
    with ctx.sessions() as session:
        row = _get(session, device_id)
        has_incident = session.scalars(
            select(Incident.id).where(Incident.device_id == device_id).limit(1)
        ).first()
        had_events = row.last_event_at is not None or has_incident is not None
    if not had_events:
        page = await ctx.store.query_events(EventQuery(device_ids=[device_id], limit=1))
        had_events = bool(page.items)
    if had_events:
        raise ApiError(409, "device has events; revoke it instead", field="device_id")
    with ctx.sessions() as session:
        row = _get(session, device_id)
        session.delete(row)
        audit.record(
            session,
            _actor(request, principal),
            action="device.deleted",
            target_type="device",
            target_id=device_id,
            at=ctx.clock.now(),
        )
        session.commit()
        _sync_broker(session, ctx.settings.api.broker_files)
    ctx.live.device_departments.pop(device_id, None)
    return Response(status_code=204)


@router.put(
    "/{device_id}/config",
    status_code=202,
    responses={**_ERRORS, 422: {"model": Problem}},
)
async def put_config(
    *,
    ctx: Ctx,
    request: Request,
    device_id: DevicePath,
    body: DeviceConfig,
    principal: ConfigDevice,
) -> ConfigAccepted:
    """Store the device's zones and rule limits as the next version and publish it retained."""
    if body.device_id != device_id:
        raise ApiError(422, "device_id in the body differs from the path", field="device_id")
    now = ctx.clock.now()
    with ctx.sessions() as session:
        row = _get(session, device_id)
        version = row.config_version + 1
        config = body.model_copy(update={"version": version, "issued_at": now})
        row.config = config.model_dump(mode="json", exclude_none=True)
        row.config_version = version
        row.updated_at = now
        audit.record(
            session,
            _actor(request, principal),
            action="device.config",
            target_type="device",
            target_id=device_id,
            at=now,
            detail={"version": version},
        )
        session.commit()
    published = False
    if ctx.mqtt is not None:
        with contextlib.suppress(UnavailableError):
            await ctx.mqtt.publish(topic(device_id, Channel.CONFIG), encode(config), retain=True)
            published = True
    return ConfigAccepted(version=version, published=published)


@router.get(
    "/{device_id}/config",
    responses=_ERRORS,
    dependencies=[Depends(DeviceScope(Permission.DEVICES_READ))],
)
def get_config(*, ctx: Ctx, device_id: DevicePath) -> ConfigOut:
    """The desired config and the version the device acknowledged."""
    with ctx.sessions() as session:
        row = _get(session, device_id)
        return ConfigOut(
            config=DeviceConfig.model_validate(row.config) if row.config else None,
            version=row.config_version,
            acked_version=row.config_acked_version,
            ack_message=row.config_ack_message,
        )


@router.post(
    "/{device_id}/commands",
    responses={
        **_ERRORS,
        200: {"model": CommandAck},
        202: {"model": CommandAccepted},
        503: {"model": Problem},
    },
)
async def send_command(
    *,
    ctx: Ctx,
    request: Request,
    device_id: DevicePath,
    body: CommandRequest,
    principal: ConfigDevice,
    response: Response,
    wait: Annotated[float, Query(ge=0, le=30, description="Seconds to wait for the ack.")] = 0,
) -> CommandAck | CommandAccepted:
    """Send ``snapshot`` or ``reload``; 200 with the device's ack if it comes within ``wait``."""
    if ctx.mqtt is None:
        raise UnavailableError("this API runs without MQTT", field="mqtt")
    now = ctx.clock.now()
    command = Command(
        id=new_id(),
        device_id=device_id,
        name=CommandName(body.name),
        issued_at=now,
        camera_id=body.camera_id,
        args=body.args,
    )
    actor = _actor(request, principal)
    with ctx.sessions() as session:
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
        audit.record(
            session,
            actor,
            action=f"device.command.{command.name.value}",
            target_type="device",
            target_id=device_id,
            at=now,
            detail={"command_id": command.id},
        )
        session.commit()
    future = ctx.mqtt.expect_ack(command.id)
    try:
        await ctx.mqtt.publish(topic(device_id, Channel.CMD), encode(command))
        if wait > 0:
            ack = await asyncio.wait_for(asyncio.shield(future), wait)
            response.status_code = 200
            return ack
    except TimeoutError:
        pass
    finally:
        ctx.mqtt.forget([command.id])
    response.status_code = 202
    return CommandAccepted(command_id=command.id)


@router.get(
    "/{device_id}/commands/{command_id}",
    responses=_ERRORS,
    dependencies=[Depends(DeviceScope(Permission.DEVICES_READ))],
)
def get_command_ack(
    *,
    ctx: Ctx,
    device_id: DevicePath,
    command_id: Annotated[str, Path(max_length=64)],
) -> CommandAck:
    """The device's acknowledgement of a command; 404 until it arrives."""
    with ctx.sessions() as session:
        record = session.get(CommandRecord, command_id)
        if record is None or record.device_id != device_id or record.ack is None:
            raise ApiError(404, f"no acknowledgement for {command_id!r} yet", field="command_id")
        return CommandAck.model_validate_json(record.ack)


__all__ = ["check_device_scope", "router"]
