"""NGSI-LD API subset: ``Alert`` and ``Device`` entities out, context-broker notifications in."""

import asyncio
import hmac
import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.problems import ngsi_type
from cloud.connectors.config import SOURCE_ID_PATTERN, NgsiLdSource
from cloud.connectors.hub import ConnectorHub
from cloud.connectors.problems import problem
from cloud.connectors.routes import MAX_BODY_BYTES, ingest_response, rate_limited, too_large
from cloud.db.devices import Device
from cloud.ngsi.alert import Form, event_to_alert
from cloud.ngsi.context import ALERT_CONTEXT, DEVICE_CONTEXT, LD_JSON, local_id
from cloud.ngsi.device import DeviceFacts, device_to_entity
from cloud.ngsi.forms import to_key_values
from cloud.ops.roles import Principal
from cloud.store.base import EventQuery, EventStore

logger = logging.getLogger(__name__)
_CONTEXT_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
_ENTITY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {"id": {"type": "string"}, "type": {"type": "string"}},
}


def _ok(schema: dict[str, Any], what: str) -> dict[int | str, dict[str, Any]]:
    """An NGSI-LD 200: ``application/ld+json`` with ``@context``, or JSON with a Link header."""
    return {
        200: {
            "description": what,
            "content": {LD_JSON: {"schema": schema}, "application/json": {"schema": schema}},
        }
    }


def _form(options: str | None) -> Form:
    return "keyValues" if options and "keyValues" in options.split(",") else "normalized"


def _wants_ld(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" not in accept or LD_JSON in accept


def _entities(body: Any, request: Request, context_url: str) -> Response:
    if _wants_ld(request):
        return JSONResponse(body, media_type=LD_JSON)
    return JSONResponse(body, headers={"Link": f"<{context_url}>; {_CONTEXT_REL}"})


def _bad(detail: str, field: str) -> Response:
    return problem(400, "BadRequestData", detail, field=field, type_=ngsi_type(400))


def _not_found(detail: str, field: str) -> Response:
    return problem(404, "ResourceNotFound", detail, field=field, type_=ngsi_type(404))


def _refusal(hub: ConnectorHub, source: NgsiLdSource, request: Request) -> Response | None:
    """429 over the rate, 401 without the source's token; None when the request may pass."""
    guard = hub.guards[source.id]
    limited = rate_limited(guard, source.id)
    if limited is not None:
        return limited
    sent = request.headers.get(source.token_header, "").removeprefix("Bearer ").strip()
    secret = guard.secret.get_secret_value().encode()
    if not sent or not hmac.compare_digest(sent.encode(), secret):
        hub.intakes[source.id].health.error("refused notification: bad token")
        return problem(401, "Unauthorized", "missing or wrong token", field=source.token_header)
    return None


def _notification_data(body: bytes) -> list[Any]:
    notification = json.loads(body)
    data = notification.get("data") if isinstance(notification, dict) else None
    if not isinstance(data, list):
        raise TypeError("'data' is missing or not a list")
    return data


async def receive_notification(hub: ConnectorHub, source_id: str, request: Request) -> Response:
    source = hub.source(source_id)
    if not isinstance(source, NgsiLdSource) or source_id not in hub.guards:
        return _not_found(f"no ngsi_ld source {source_id}", "source_id")
    refused = _refusal(hub, source, request)
    if refused is not None:
        return refused
    intake = hub.intakes[source_id]
    body = b"" if too_large(request) else await request.body()
    if too_large(request) or len(body) > MAX_BODY_BYTES:
        return problem(413, "Too large", f"body over {MAX_BODY_BYTES} bytes", field="body")
    try:
        data = _notification_data(body)
    except (ValueError, TypeError) as exc:
        intake.health.error(f"bad notification: {exc}")
        return _bad(f"not an NGSI-LD notification: {exc}", "data")
    records = [to_key_values(e) if isinstance(e, dict) else e for e in data]
    return await ingest_response(intake, records, status=200)


class _Sources:
    """Alerts from the event store, Devices from the registry, within the caller's departments.

    Store and sessions are either given, or read per request from ``app.state.store`` /
    ``app.state.sessions`` (what ``cloud.api.app.create_app`` sets), so the router can be built
    before the app. A department-scoped API key (``request.state.principal``) sees only devices
    of its departments and their alerts, as in the API's event routes.
    """

    def __init__(
        self,
        store: EventStore | None,
        sessions: sessionmaker[Session] | None,
        allowed: frozenset[str] | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.allowed = allowed

    def bound(self, request: Request) -> "_Sources":
        state = request.app.state
        store = self.store if self.store is not None else getattr(state, "store", None)
        sessions = self.sessions if self.sessions is not None else getattr(state, "sessions", None)
        principal = getattr(request.state, "principal", None)
        allowed: frozenset[str] | None = None
        if isinstance(principal, Principal) and not principal.all_departments:
            allowed = frozenset()
            if sessions is not None:
                with sessions() as session:
                    rows = session.execute(select(Device.id, Device.department)).all()
                allowed = frozenset(d for d, dept in rows if principal.sees(dept))
        return _Sources(store, sessions, allowed)

    def _visible(self, device: str) -> bool:
        return self.allowed is None or device in self.allowed

    async def alerts(self, limit: int, form: Form, *, context: bool) -> list[dict[str, Any]]:
        if self.store is None or self.allowed == frozenset():
            return []
        devices = sorted(self.allowed) if self.allowed is not None else []
        page = await self.store.query_events(EventQuery(limit=limit, device_ids=devices))
        return [event_to_alert(e, form, context=context) for e in page.items]

    async def alert(self, event_id: str, form: Form, *, context: bool) -> dict[str, Any] | None:
        if self.store is None:
            return None
        event = await self.store.get_event(event_id)
        if event is None or not self._visible(event.device_id):
            return None
        return event_to_alert(event, form, context=context)

    def _devices(self, limit: int) -> list[DeviceFacts]:
        if self.sessions is None:
            return []
        query = select(Device).order_by(Device.id).limit(limit)
        if self.allowed is not None:
            query = query.where(Device.id.in_(sorted(self.allowed)))
        with self.sessions() as session:
            return [DeviceFacts.of(row) for row in session.scalars(query)]

    def _device(self, device: str) -> DeviceFacts | None:
        if self.sessions is None or not self._visible(device):
            return None
        with self.sessions() as session:
            row = session.get(Device, device)
            return None if row is None else DeviceFacts.of(row)

    async def devices(self, limit: int, form: Form, *, context: bool) -> list[dict[str, Any]]:
        facts = await asyncio.to_thread(self._devices, limit)
        return [device_to_entity(f, form, context=context) for f in facts]

    async def device(self, device: str, form: Form, *, context: bool) -> dict[str, Any] | None:
        found = await asyncio.to_thread(self._device, device)
        return None if found is None else device_to_entity(found, form, context=context)

    async def by_urn(self, entity_id: str, request: Request, form: Form) -> Response:
        context = _wants_ld(request)
        if (event_id := local_id(entity_id, "Alert")) is not None:
            found = await self.alert(event_id, form, context=context)
            url = ALERT_CONTEXT
        elif (device := local_id(entity_id, "Device")) is not None:
            found = await self.device(device, form, context=context)
            url = DEVICE_CONTEXT
        else:
            return _bad("id must be urn:ngsi-ld:Alert:<id> or urn:ngsi-ld:Device:<id>", "entity_id")
        if found is None:
            return _not_found(f"no entity {entity_id}", "entity_id")
        return _entities(found, request, url)


def build_ngsi_router(
    *,
    store: EventStore | None = None,
    sessions: sessionmaker[Session] | None = None,
    hub: ConnectorHub | None = None,
    read_dependencies: Sequence[Any] = (),
) -> APIRouter:
    """NGSI-LD routes: entities out, notifications in.

    ``GET /ngsi-ld/v1/entities`` serves Alerts from the event store and Devices from the
    registry; ``POST /ngsi-ld/v1/notify/{source_id}`` feeds ``ngsi_ld`` connector sources.
    """
    router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])
    sources = _Sources(store, sessions)
    guarded = [Depends(d) for d in read_dependencies]

    @router.get(
        "/entities",
        summary="Alert or Device entities (normalized, or options=keyValues)",
        dependencies=guarded,
        response_class=JSONResponse,
        responses={**_ok({"type": "array", "items": _ENTITY}, "Entities"), 400: {}},
    )
    async def entities(
        request: Request,
        type: Annotated[str, Query(description="Alert or Device")],  # noqa: A002 - NGSI-LD name
        options: Annotated[
            str | None, Query(description="keyValues for the simplified form")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> Response:
        form = _form(options)
        context = _wants_ld(request)
        here = await asyncio.to_thread(sources.bound, request)
        if type == "Alert":
            return _entities(
                await here.alerts(limit, form, context=context), request, ALERT_CONTEXT
            )
        if type == "Device":
            return _entities(
                await here.devices(limit, form, context=context), request, DEVICE_CONTEXT
            )
        return _bad(f"entity type {type!r} is not served here: use Alert or Device", "type")

    @router.get(
        "/entities/{entity_id}",
        summary="One Alert (urn:ngsi-ld:Alert:<event id>) or Device (urn:ngsi-ld:Device:<id>)",
        dependencies=guarded,
        response_class=JSONResponse,
        responses={**_ok(_ENTITY, "The entity"), 400: {}, 404: {}},
    )
    async def entity(
        request: Request,
        entity_id: Annotated[str, Path(max_length=256)],
        options: Annotated[str | None, Query()] = None,
    ) -> Response:
        here = await asyncio.to_thread(sources.bound, request)
        return await here.by_urn(entity_id, request, _form(options))

    @router.post(
        "/notify/{source_id}",
        summary="Receive an NGSI-LD notification from a context broker (ngsi_ld source)",
        responses={400: {}, 401: {}, 404: {}, 413: {}, 422: {}, 429: {}, 503: {}},
    )
    async def notify(
        request: Request,
        source_id: Annotated[str, Path(pattern=SOURCE_ID_PATTERN)],
    ) -> Response:
        if hub is None:
            return _not_found("no connector sources configured", "source_id")
        return await receive_notification(hub, source_id, request)

    return router
