"""Dependencies as ``Annotated`` aliases: the context, the caller and its permission, scoping."""

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cloud.api.context import ApiContext
from cloud.api.problems import ApiError
from cloud.console.auth import cookie_principal
from cloud.db.devices import Device
from cloud.ops.keys import authenticate
from cloud.ops.models import IncidentOut
from cloud.ops.roles import Actor, Permission, Principal
from shared.limits import DEVICE_ID_PATTERN

bearer = HTTPBearer(auto_error=False, description="An API key: `cok_<id>_<secret>`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_context)]


def principal_of(ctx: ApiContext, token: str | None) -> Principal:
    if not token:
        raise ApiError(401, "missing credentials: send 'Authorization: Bearer <api key>'")
    principal = ctx.keys.get(token)
    if principal is not None:
        return principal
    with ctx.sessions() as session:
        # On a cache miss only, so ``last_used_at`` costs one write per key per cache period.
        principal = authenticate(session, token, touch=True)
    if principal is None:
        raise ApiError(401, "invalid or revoked API key")
    ctx.keys.put(token, principal)
    return principal


def principal_of_request(
    request: Request, ctx: ApiContext, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The API key's principal or, without a key, the signed-in console user's (CSRF-checked)."""
    if credentials is None:
        user = cookie_principal(request, ctx)
        if user is not None:
            return user
    return principal_of(ctx, credentials.credentials if credentials else None)


class Require:
    """Dependency: an authenticated caller holding *permission* (401 / 403 otherwise)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, request: Request, ctx: Ctx, credentials: Credentials) -> Principal:
        principal = principal_of_request(request, ctx, credentials)
        if not principal.can(self.permission):
            raise ApiError(
                403, f"role {principal.role.value!r} lacks permission {self.permission.value!r}"
            )
        request.state.principal = principal
        return principal


def actor_of(request: Request, principal: Principal) -> Actor:
    source = request.client.host if request.client else ""
    return Actor.of(principal, source=source, user_agent=request.headers.get("user-agent", ""))


DevicePath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, examples=["cam-praca-01"])]
IncidentPath = Annotated[str, Path(min_length=1, max_length=36)]


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

    def __call__(
        self,
        request: Request,
        ctx: Ctx,
        credentials: Credentials,
        device_id: DevicePath,
    ) -> Principal:
        principal = self.require(request, ctx, credentials)
        with ctx.sessions() as session:
            check_device_scope(session, principal, device_id)
        return principal


class IncidentScope:
    """Dependency: the incident in the path, if the caller (with *permission*) may see it."""

    def __init__(self, permission: Permission) -> None:
        self.require = Require(permission)

    def __call__(
        self,
        request: Request,
        ctx: Ctx,
        credentials: Credentials,
        incident_id: IncidentPath,
    ) -> IncidentOut:
        principal = self.require(request, ctx, credentials)
        incident = ctx.ops.get(incident_id)
        if incident is None:
            raise ApiError(404, f"no incident {incident_id!r}", field="incident_id")
        if not principal.sees(incident.department):
            raise ApiError(403, f"incident belongs to department {incident.department!r}")
        return incident


def current_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal
