"""The OpenAPI document as the server behaves: readable operation ids, every error a problem.

``install(app)`` replaces ``app.openapi``: each operation gets a stable camelCase id (its
handler's name, or a clearer one below), and every error response it can give is declared as
``application/problem+json`` (401/403/503 where a key is needed, 404 where the path
names something, 422 where there is input).
"""

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from cloud.api.problems import PROBLEM_JSON, Problem

READABLE_IDS: Final = {
    "healthz": "getHealth",
    "readyz": "getReadiness",
    "metrics": "getMetrics",
    "me": "getMe",
    "dead_letters": "listDeadLetters",
    "hotspots": "listHotspots",
    "incident_audit": "listIncidentAudit",
    "acknowledge": "acknowledgeIncident",
    "dispatch": "dispatchIncident",
    "resolve": "resolveIncident",
    "false_alarm": "markIncidentFalseAlarm",
    "add_note": "addIncidentNote",
    "assign": "assignIncident",
    "set_checklist": "setIncidentChecklistStep",
    "audit_log": "listAudit",
    "sse": "streamLive",
    "entities": "listEntities",
    "entity": "getEntity",
    "notify": "receiveNotification",
    "put_config": "putDeviceConfig",
    "get_config": "getDeviceConfig",
    "send_command": "sendDeviceCommand",
    "get_command_ack": "getDeviceCommand",
    "issue_credentials": "issueDeviceCredentials",
    "create_ticket": "createLiveTicket",
    "get_snapshot": "getEventSnapshot",
    "list_sources": "listConnectorSources",
}
"""Handler names that read poorly as client method names."""
_PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
_TITLES: Final = {
    400: "Bad request",
    401: "No valid credentials",
    403: "Outside the caller's role or departments",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Invalid input; `errors[].field` names it",
    429: "Too many requests",
    503: "Service unavailable (the store is down); retry after `Retry-After`",
}
_REPLACEABLE: Final = {"#/components/schemas/Problem", "#/components/schemas/HTTPValidationError"}


def operation_id(name: str) -> str:
    """``list_incidents`` → ``listIncidents`` (or the clearer id of ``READABLE_IDS``)."""
    if name in READABLE_IDS:
        return READABLE_IDS[name]
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    """Every ``APIRoute``, included routers opened."""
    found: list[APIRoute] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found += api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def _is_replaceable(response: dict[str, Any]) -> bool:
    refs = [
        media.get("schema", {}).get("$ref")
        for media in response.get("content", {}).values()
        if isinstance(media, dict)
    ]
    return all(ref is None or ref in _REPLACEABLE for ref in refs)


def _declare_errors(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted: set[int] = set()
    if operation.get("security"):
        wanted |= {401, 403, 503}  # 503: the store or database is down (with Retry-After)
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        wanted.add(422)
    if any(p.get("in") == "path" for p in parameters):
        wanted.add(404)
    for status in wanted:
        responses.setdefault(str(status), {})
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400 or not _is_replaceable(response):  # noqa: PLR2004
            continue
        title = _TITLES.get(int(code), "Error")
        if response.get("description") in {None, "", "Validation Error", "Successful Response"}:
            response["description"] = title
        response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document FastAPI generates, with ids and error responses made true."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    ids: dict[str, str] = {}
    for route in api_routes(app.routes):
        if not route.include_in_schema:
            continue
        for method in sorted(route.methods or ()):
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            new_id = operation_id(route.name)
            if new_id in ids:
                raise ValueError(f"operation id {new_id!r} of {route.path} is already used")
            ids[new_id] = route.path
            operation["operationId"] = new_id
            _declare_errors(operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for name, schema in (
        Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        .get("$defs", {})
        .items()
    ):
        schemas.setdefault(name, schema)
    return document


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
