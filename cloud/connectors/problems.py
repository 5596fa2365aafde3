"""``application/problem+json`` responses (RFC 9457) naming the field at fault."""

from fastapi.responses import JSONResponse


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["errors"] = [{"field": field, "message": detail}]
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )
