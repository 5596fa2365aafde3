"""Errors as ``application/problem+json`` (RFC 9457), each naming the field when there is one."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.ops.errors import OpsError
from cloud.store.base import StoreUnavailableError
from shared.errors import ContractError

logger = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
NGSI_LD_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
"""ETSI NGSI-LD error types (GS CIM 009, 5.5.2): ``<this><Name>``, e.g. ``ResourceNotFound``."""
_NGSI_PREFIX = "/ngsi-ld/"
_UNREADABLE_BODY = "error parsing the body"
_NGSI_TYPES = {400: "BadRequestData", 404: "ResourceNotFound", 422: "BadRequestData"}


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(default="", examples=["no incident '0190…'"])
    errors: list[FieldError] = Field(default_factory=list)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def problem(
    status: int,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
) -> JSONResponse:
    """The one builder of error responses (API, connectors, NGSI-LD)."""
    body = Problem(
        type=type_,
        title=title or _TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=errors or [],
    )
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def ngsi_type(status: int) -> str:
    """The ETSI error type for an NGSI-LD answer of *status* (``about:blank`` if none fits)."""
    name = _NGSI_TYPES.get(status)
    return NGSI_LD_ERRORS + name if name else "about:blank"


def _type_for(request: Request, status: int) -> str:
    return ngsi_type(status) if request.url.path.startswith(_NGSI_PREFIX) else "about:blank"


class ApiError(Exception):
    """An HTTP error raised by a route or dependency (401/403 carry their own headers)."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        errors = [FieldError(field=exc.field, message=exc.detail)] if exc.field else []
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None  # noqa: PLR2004
        return problem(
            exc.status, exc.detail, errors, headers, type_=_type_for(request, exc.status)
        )

    @app.exception_handler(OpsError)
    async def _ops_error(_request: Request, exc: OpsError) -> JSONResponse:
        errors = [FieldError(field=exc.field, message=exc.detail)] if exc.field else []
        return problem(exc.status, exc.detail, errors)

    @app.exception_handler(ContractError)
    async def _contract(_request: Request, exc: ContractError) -> JSONResponse:
        return problem(422, str(exc), [FieldError(field=exc.field, message=exc.reason)])

    @app.exception_handler(StoreUnavailableError)
    async def _store_down(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        logger.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem(503, "the event store is unavailable; retry", headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(field=_loc(err.get("loc", ())), message=str(err.get("msg", "")))
            for err in exc.errors()
        ]
        first = errors[0] if errors else FieldError(field="request", message="invalid")
        return problem(
            422, f"{first.field}: {first.message}", errors, type_=_type_for(request, 422)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and _UNREADABLE_BODY in str(exc.detail):  # noqa: PLR2004
            # FastAPI's 400 for a body it cannot decode: invalid input like any other.
            detail = "body: not readable as the declared content type"
            return problem(
                422,
                detail,
                [FieldError(field="body", message=detail)],
                type_=_type_for(request, 422),
            )
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal error; see the server log")
