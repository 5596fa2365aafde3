"""Dependencies as ``Annotated`` aliases: the context, the caller and its permission, scoping.

Every credential goes through ``authenticate_token`` (requests, stream openings) — or, without
a key, the console's session cookie (``principal_of_request``) — and every open stream through
``revalidate`` (see ``cloud.api.routes.live``).
"""

import asyncio
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api.context import ApiContext
from cloud.api.problems import ApiError
from cloud.console.auth import cookie_principal
from cloud.db.devices import Device
from cloud.ops.keys import authenticate, principal_by_id
from cloud.ops.models import IncidentOut, IncidentStatus
from cloud.ops.roles import Actor, Permission, Principal
from cloud.ops.users import USER_KEY_PREFIX, user_principal
from shared.clock import utcnow
from shared.events import EventKind, Severity
from shared.limits import DEVICE_ID_PATTERN

bearer = HTTPBearer(auto_error=False, description="An API key: `cok_<id>_<secret>`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]


def client_address(request: Request | None) -> str:
    return request.client.host if request is not None and request.client else ""


def _look_up(ctx: ApiContext, token: str) -> Principal | None:
    with ctx.sessions() as session:
        # On a cache miss only, so ``last_used_at`` costs one write per key per cache period.
        return authenticate(session, token, touch=True)


async def refuse(ctx: ApiContext, address: str, reason: str, detail: str) -> ApiError:
    """Count a failed authentication; past a few from one address, answer it more slowly."""
    delay = ctx.auth_throttle.failed(address) if reason != "missing" else 0.0
    ctx.metrics.auth_failures.labels(reason, "yes" if delay else "no").inc()
    ctx.metrics.throttled_addresses.set(ctx.auth_throttle.throttled())
    if delay:
        await asyncio.sleep(delay)
    return ApiError(401, detail)


async def authenticate_token(ctx: ApiContext, token: str | None, address: str) -> Principal:
    """The principal of an API key (401 ``ApiError`` if missing, unknown, revoked or expired)."""
    if not token:
        raise await refuse(
            ctx, address, "missing", "missing credentials: send 'Authorization: Bearer <api key>'"
        )
    principal = ctx.keys.get(token)
    if principal is not None and (principal.expires_at is None or principal.expires_at > utcnow()):
        return principal
    principal = await asyncio.to_thread(_look_up, ctx, token)
    if principal is None:
        raise await refuse(ctx, address, "invalid", "invalid, expired or revoked API key")
    ctx.keys.put(token, principal)
    return principal


async def principal_of_request(
    request: Request, ctx: ApiContext, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The API key's principal or, without a key, the signed-in console user's (CSRF-checked)."""
    if credentials is None:
        user = await asyncio.to_thread(cookie_principal, request, ctx)
        if user is not None:
            return user
    return await authenticate_token(
        ctx, credentials.credentials if credentials else None, client_address(request)
    )


def revalidate(ctx: ApiContext, principal: Principal) -> Principal | None:
    """*principal* as its source says it is now, bypassing caches; None once it is gone.

    The one check of a principal that stays connected (live streams): a revoked or expired
    key gives None, a narrowed one (role, departments) its new scope; for a console user
    (``user:<name>``), a disabled account gives None.
    """
    with ctx.sessions() as session:
        if principal.key_id.startswith(USER_KEY_PREFIX):
            return user_principal(session, principal.key_id.removeprefix(USER_KEY_PREFIX))
        return principal_by_id(session, principal.key_id)


class Require:
    """Dependency: an authenticated caller holding *permission* (401 / 403 otherwise)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request, ctx: Ctx, credentials: Credentials) -> Principal:
        principal = await principal_of_request(request, ctx, credentials)
        if not principal.can(self.permission):
            raise ApiError(
                403, f"role {principal.role.value!r} lacks permission {self.permission.value!r}"
            )
        request.state.principal = principal
        return principal


def actor_of(request: Request, principal: Principal) -> Actor:
    user_agent = request.headers.get("user-agent", "")
    return Actor.of(principal, source=client_address(request), user_agent=user_agent)


def request_actor(request: Request) -> Actor:
    """The actor of a change made by the principal a ``Require`` dependency authenticated."""
    return actor_of(request, current_principal(request))


MAX_ROW_ID = 2**63 - 1
"""The largest integer id (cursor) a database column holds; larger ones are a 422."""

DevicePath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, examples=["cam-praca-01"])]
IncidentPath = Annotated[str, Path(min_length=1, max_length=36)]
# Filters of the incident lists (the API's and the console's queue), repeatable: ``?kind=a&kind=b``.
Statuses = Annotated[list[IncidentStatus], Query()]
Departments = Annotated[list[Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]], Query()]
Kinds = Annotated[list[EventKind], Query()]
Severities = Annotated[list[Severity], Query()]


def check_device_scope(session: Session, principal: Principal, device_id: str) -> Device | None:
    """The device row (None if unknown); 403 if it belongs to a department out of scope."""
    row = session.get(Device, device_id)
    if row is not None and not principal.sees(row.department):
        raise ApiError(403, f"device {device_id!r} belongs to another department")
    return row


class DeviceScope:
    """Dependency: the caller (with *permission*) may act on the device in the path."""

    def __init__(self, permission: Permission) -> None:
        self.require = Require(permission)

    async def __call__(
        self,
        request: Request,
        ctx: Ctx,
        credentials: Credentials,
        device_id: DevicePath,
    ) -> Principal:
        principal = await self.require(request, ctx, credentials)
        await asyncio.to_thread(_check_device, ctx, principal, device_id)
        return principal


def _check_device(ctx: ApiContext, principal: Principal, device_id: str) -> None:
    with ctx.sessions() as session:
        check_device_scope(session, principal, device_id)


class IncidentScope:
    """Dependency: the incident in the path, if the caller (with *permission*) may see it."""

    def __init__(self, permission: Permission) -> None:
        self.require = Require(permission)

    async def __call__(
        self,
        request: Request,
        ctx: Ctx,
        credentials: Credentials,
        incident_id: IncidentPath,
    ) -> IncidentOut:
        principal = await self.require(request, ctx, credentials)
        incident = await asyncio.to_thread(ctx.ops.get, incident_id)
        if incident is None:
            raise ApiError(404, f"no incident {incident_id!r}", field="incident_id")
        if not principal.sees(incident.department):
            raise ApiError(403, f"incident belongs to department {incident.department!r}")
        return incident


def visible_devices(ctx: ApiContext, principal: Principal) -> frozenset[str] | None:
    """Device ids whose data a department-scoped caller may see (None: every device).

    A device is visible when it is registered with one of the caller's departments or with
    none; data of devices not in the registry is shown to all-department callers only.
    """
    if principal.all_departments:
        return None
    with ctx.sessions() as session:
        rows = session.execute(select(Device.id, Device.department)).all()
    return frozenset(device_id for device_id, dept in rows if principal.sees(dept))


def request_principal(request: Request) -> Principal | None:
    """The principal a ``Require`` dependency of this request authenticated (None if none)."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else None


def current_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal
