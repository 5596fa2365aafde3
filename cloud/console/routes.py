"""Console pages, sign-in and sign-out, and the queue the main screen reads."""

import asyncio
import secrets
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cloud.api.deps import (
    Credentials,
    Ctx,
    Departments,
    IncidentPath,
    Kinds,
    Require,
    Severities,
    Statuses,
    actor_of,
    client_address,
)
from cloud.api.problems import ApiError, Problem
from cloud.console.auth import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginThrottle,
    check_csrf,
    cookie_secure,
    session_limits,
    session_of,
)
from cloud.console.i18n import languages, messages, pick_language
from cloud.ops import audit
from cloud.ops.models import IncidentStatus
from cloud.ops.roles import Actor, Permission, Principal
from cloud.ops.service import IncidentFilter, IncidentPage
from cloud.ops.sessions import OpenSession, close_session, csrf_matches, open_session
from cloud.ops.users import check_login
from shared.clock import utcnow
from shared.events import EventKind, Severity

router = APIRouter(include_in_schema=False)
# The pages' own JSON (not part of the documented API: it follows the pages, not a contract).
api_router = APIRouter(prefix="/console/api", tags=["console"], include_in_schema=False)
docs_router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(resources.files("cloud.console") / "templates"))
STATIC_PREFIX = "/console/static"
QUEUE_FIRST_PAGE = 100
_OPEN_STATUSES = tuple(s for s in IncidentStatus if not s.closed)
_MAX_LOGIN_BODY = 4096


def content_security_policy(tile_url: str) -> str:
    """Only this server (and the configured tile server for map images) may be reached."""
    tiles = ""
    if tile_url.startswith(("http://", "https://")):
        scheme, _, rest = tile_url.partition("://")
        tiles = f" {scheme}://{rest.split('/', 1)[0]}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:{tiles}; connect-src 'self'; font-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


def _headers(ctx: Ctx) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(ctx.settings.api.console.tile_url),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _render(
    request: Request,
    ctx: Ctx,
    template: str,
    *,
    page: str,
    opened: OpenSession | None,
    status_code: int = 200,
    data: dict[str, Any] | None = None,
    **extra: Any,
) -> HTMLResponse:
    lang = pick_language(request)
    words = messages(lang)
    console = ctx.settings.api.console
    principal = opened.principal if opened else None
    config = {
        "page": page,
        "lang": lang,
        "languages": languages(),
        "messages": words,
        "user": None
        if principal is None
        else {
            "name": principal.name,
            "role": principal.role.value,
            "departments": sorted(principal.departments),
            "can_write": principal.can(Permission.INCIDENTS_WRITE),
            "can_read_incidents": principal.can(Permission.INCIDENTS_READ),
            "can_read_events": principal.can(Permission.EVENTS_READ),
        },
        "map": {
            "tile_url": console.tile_url,
            "attribution": console.tile_attribution,
            "center": list(console.map_center),
            "zoom": console.map_zoom,
        },
        "data": data or {},
    }
    context = {
        "request": request,
        "page": page,
        "lang": lang,
        "t": words,
        "languages": languages(),
        "user": config["user"],
        "csrf": opened.csrf_token if opened else "",
        "config": config,
        "static": STATIC_PREFIX,
        **extra,
    }
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=_headers(ctx)
    )


class SignInRequiredError(Exception):
    """A page was asked for without a session: the browser is sent to the sign-in form."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


async def sign_in_first(_request: Request, exc: Exception) -> Response:
    target = exc.target if isinstance(exc, SignInRequiredError) else "/"
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


class PageAccess(Require):
    """Dependency of a page: a signed-in user (else a redirect to /login) with *permission*."""

    async def __call__(
        self,
        request: Request,
        ctx: Ctx,
        credentials: Credentials,  # noqa: ARG002 - same signature as Require; keys are ignored
    ) -> Principal:
        if await asyncio.to_thread(session_of, request, ctx) is None:
            query = f"?{request.url.query}" if request.url.query else ""
            raise SignInRequiredError(request.url.path + query)
        # Pages are for people: only the session counts here, never an API key.
        return await super().__call__(request, ctx, None)


def _landing(principal: Principal, wanted: str) -> str:
    """Where to go after sign-in: the queue, or the devices for a role that has no queue."""
    if wanted == "/" and not principal.can(Permission.INCIDENTS_READ):
        return "/devices"
    return wanted


def _safe_next(value: str | None) -> str:
    """Only a path of this server (no ``//host`` or scheme): no open redirect after sign-in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# ------------------------------------------------------------------------ sign-in, sign-out


def _login_page(
    request: Request, ctx: Ctx, *, error: str = "", status_code: int = 200, next_url: str = "/"
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = _render(
        request,
        ctx,
        "login.html",
        page="login",
        opened=None,
        status_code=status_code,
        login_csrf=token,
        error=error,
        next_url=_safe_next(next_url),
    )
    # Double-submit token: a cross-site form cannot read the cookie to copy it into the field.
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, ctx),
        path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, ctx: Ctx, next: str = "/") -> Response:  # noqa: A002
    if session_of(request, ctx) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, ctx, next_url=next)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_LOGIN_BODY:
        raise ApiError(413, "form too large")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    return {k: v[0] for k, v in parsed.items() if v}


def _user_actor(request: Request, name: str, role: str) -> Actor:
    return Actor(
        name=name,
        role=role,
        source=client_address(request),
        user_agent=request.headers.get("user-agent", "")[:256],
    )


@router.post("/login")
async def login(request: Request, ctx: Ctx) -> Response:
    form = await _form(request)
    username = form.get("username", "").strip().lower()[:64]
    password = form.get("password", "")
    next_url = form.get("next", "/")
    words = messages(pick_language(request))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not csrf_matches(cookie_token, form.get(CSRF_FIELD)):
        return _login_page(
            request, ctx, error=words["login.expired"], status_code=403, next_url=next_url
        )
    throttle: LoginThrottle = request.app.state.login_throttle
    source = client_address(request)
    keys = (f"user:{username}", f"addr:{source}")
    async with throttle.lock(username):
        await asyncio.sleep(throttle.delay_s(*keys))
        principal = await asyncio.to_thread(_check, ctx, username, password)
        if principal is None:
            throttle.failed(*keys)
    if principal is None:
        await asyncio.to_thread(
            _audit_user, ctx, _user_actor(request, username or "?", "anonymous"), "login_failed"
        )
        return _login_page(
            request, ctx, error=words["login.failed"], status_code=401, next_url=next_url
        )
    throttle.succeeded(*keys)
    limits = session_limits(ctx)
    with ctx.sessions() as session:
        opened = open_session(
            session,
            principal,
            username,
            limits,
            source=source,
            user_agent=request.headers.get("user-agent", ""),
        )
    await asyncio.to_thread(_audit_user, ctx, actor_of(request, principal), "login", username)
    response = RedirectResponse(_landing(principal, _safe_next(next_url)), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        max_age=int(limits.max_age.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, ctx),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def _check(ctx: Ctx, username: str, password: str) -> Principal | None:
    with ctx.sessions() as session:
        return check_login(session, username, password)


def _audit_user(ctx: Ctx, actor: Actor, action: str, username: str | None = None) -> None:
    with ctx.sessions() as session:
        audit.record(
            session,
            actor,
            action=f"user.{action}",
            target_type="user",
            target_id=(username or actor.name)[:128],
            at=utcnow(),
        )
        session.commit()


@router.post("/logout")
async def logout(request: Request, ctx: Ctx) -> Response:
    opened = session_of(request, ctx)
    response = RedirectResponse("/login", status_code=303)
    if opened is not None:
        form = await _form(request)
        check_csrf(request, opened, form.get(CSRF_FIELD))
        token = request.cookies.get(SESSION_COOKIE, "")
        with ctx.sessions() as session:
            close_session(session, token)
        await asyncio.to_thread(
            _audit_user, ctx, actor_of(request, opened.principal), "logout", opened.username
        )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------------ pages


def _queue_data(ctx: Ctx, principal: Principal) -> dict[str, Any]:
    page = queue(ctx=ctx, principal=principal)  # the first page, as the queue's JSON gives it
    departments = [d.model_dump() for d in ctx.ops.router.departments if principal.sees(d.id)]
    return {
        "queue": page.model_dump(mode="json"),
        "departments": departments,
        "kinds": [k.value for k in EventKind],
        "severities": [s.value for s in Severity],
        "statuses": [s.value for s in IncidentStatus],
    }


IncidentReader = Annotated[Principal, Depends(PageAccess(Permission.INCIDENTS_READ))]
DeviceReader = Annotated[Principal, Depends(PageAccess(Permission.DEVICES_READ))]
EventReader = Annotated[Principal, Depends(PageAccess(Permission.EVENTS_READ))]


@router.get("/")
def queue_page(request: Request, ctx: Ctx, principal: IncidentReader) -> Response:
    opened = session_of(request, ctx)
    data = _queue_data(ctx, principal)
    return _render(request, ctx, "queue.html", page="queue", opened=opened, data=data)


@router.get("/incidents/{incident_id}")
def incident_page(
    request: Request, ctx: Ctx, principal: IncidentReader, incident_id: IncidentPath
) -> Response:
    opened = session_of(request, ctx)
    incident = ctx.ops.get(incident_id)
    if incident is None or not principal.sees(incident.department):
        # The same answer for "no such incident" and "not yours": ids of others are not confirmed.
        return _render(request, ctx, "missing.html", page="missing", opened=opened, status_code=404)
    data = {
        "incident": incident.model_dump(mode="json"),
        "event_ids": ctx.ops.event_ids(incident.id),
    }
    return _render(request, ctx, "incident.html", page="incident", opened=opened, data=data)


def _page_data() -> dict[str, Any]:
    return {"kinds": [k.value for k in EventKind], "severities": [s.value for s in Severity]}


@router.get("/map")
def map_page(request: Request, ctx: Ctx, _principal: DeviceReader) -> Response:
    opened = session_of(request, ctx)
    return _render(request, ctx, "map.html", page="map", opened=opened, data=_page_data())


@router.get("/devices")
def devices_page(request: Request, ctx: Ctx, _principal: DeviceReader) -> Response:
    opened = session_of(request, ctx)
    return _render(request, ctx, "devices.html", page="devices", opened=opened, data=_page_data())


@router.get("/events")
def events_page(request: Request, ctx: Ctx, _principal: EventReader) -> Response:
    opened = session_of(request, ctx)
    return _render(request, ctx, "events.html", page="events", opened=opened, data=_page_data())


@docs_router.get("/docs")
def swagger_page(request: Request, ctx: Ctx) -> Response:
    """Swagger UI from the ``swagger-ui-bundle-v2`` package, served here: works offline."""
    lang = pick_language(request)
    return templates.TemplateResponse(
        request,
        "swagger.html",
        {"request": request, "lang": lang, "static": STATIC_PREFIX},
        headers=_headers(ctx),
    )


# ------------------------------------------------------------------------ JSON for the pages


@api_router.get("/queue", responses={401: {"model": Problem}, 422: {"model": Problem}})
def queue(
    *,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(Require(Permission.INCIDENTS_READ))],
    status: Statuses = [],  # noqa: B006 - FastAPI copies
    department: Departments = [],  # noqa: B006
    kind: Kinds = [],  # noqa: B006
    severity: Severities = [],  # noqa: B006
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = QUEUE_FIRST_PAGE,
) -> IncidentPage:
    """Open incidents of the caller's departments, most severe first, then newest.

    Closed statuses asked for are ignored; a forged cursor is a 422 (``InvalidQueryError``).
    """
    query = IncidentFilter(
        statuses=[s for s in status if not s.closed] or list(_OPEN_STATUSES),
        departments=department,
        kinds=kind,
        severities=severity,
        by_severity=True,
        cursor=cursor,
        limit=limit,
    )
    return ctx.ops.list_incidents(query, principal.department_scope)
