"""Devices: registry, health, MQTT credentials, configuration (zones) and commands.

The registry is ``DeviceService``'s (``ctx.devices``); these routes parse, call it, and do
what needs the API's MQTT connection: publish a config retained, send a command, wait for its ack.
"""

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from cloud.api.deps import (
    Ctx,
    DevicePath,
    DeviceScope,
    Require,
    actor_of,
    check_device_scope,
)
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
from cloud.ops.devices import DeviceFilter
from cloud.ops.errors import UnavailableError
from cloud.ops.roles import Permission, Principal
from shared.codec import encode
from shared.commands import CommandAck, CommandName
from shared.config import DeviceConfig
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
    query = DeviceFilter(
        site=site,
        online=online,
        device_type=device_type,
        q=q,
        blind_spot=blind_spot,
        cursor=cursor,
        limit=limit,
    )
    return ctx.devices.list_devices(query, principal)


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
    return await ctx.devices.get(device_id, telemetry=telemetry)


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
    result = ctx.devices.upsert(device_id, body, actor_of(request, principal))
    ctx.live.device_departments[device_id] = result.device.department
    response.status_code = 201 if result.created else 200
    return result.device


@router.post("/{device_id}/credentials", responses={**_ERRORS, 409: {"model": Problem}})
def issue_credentials(
    *, ctx: Ctx, request: Request, device_id: DevicePath, principal: WriteDevice
) -> MqttCredentials:
    """New MQTT password for the device (rotates any previous one); the broker reloads."""
    return ctx.devices.issue_credentials(device_id, actor_of(request, principal))


@router.post("/{device_id}/revoke", responses=_ERRORS)
def revoke_device(
    *, ctx: Ctx, request: Request, device_id: DevicePath, principal: WriteDevice
) -> DeviceOut:
    """Remove the device's broker credentials; its events and incidents are kept."""
    return ctx.devices.revoke(device_id, actor_of(request, principal))


@router.delete("/{device_id}", status_code=204, responses={**_ERRORS, 409: {"model": Problem}})
async def delete_device(
    *, ctx: Ctx, request: Request, device_id: DevicePath, principal: WriteDevice
) -> Response:
    """Remove a registration with no history yet (rolls back a half-done provisioning)."""
    await ctx.devices.delete(device_id, actor_of(request, principal))
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
    config = ctx.devices.put_config(device_id, body, actor_of(request, principal))
    published = False
    if ctx.mqtt is not None:
        # A broker away is no error: the API republishes unacknowledged configs on reconnect.
        with contextlib.suppress(UnavailableError):
            await ctx.mqtt.publish(topic(device_id, Channel.CONFIG), encode(config), retain=True)
            published = True
    return ConfigAccepted(version=config.version, published=published)


@router.get(
    "/{device_id}/config",
    responses=_ERRORS,
    dependencies=[Depends(DeviceScope(Permission.DEVICES_READ))],
)
def get_config(*, ctx: Ctx, device_id: DevicePath) -> ConfigOut:
    """The desired config and the version the device acknowledged."""
    return ctx.devices.get_config(device_id)


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
    command = ctx.devices.record_command(
        device_id,
        CommandName(body.name),
        actor_of(request, principal),
        camera_id=body.camera_id,
        args=body.args,
    )
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
    return ctx.devices.command_ack(device_id, command_id)


__all__ = ["check_device_scope", "router"]
