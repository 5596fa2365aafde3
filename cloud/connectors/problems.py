"""``application/problem+json`` responses of the connector routes (``cloud.api.problems``)."""

from fastapi.responses import JSONResponse

from cloud.api.problems import FieldError
from cloud.api.problems import problem as api_problem


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    type_: str = "about:blank",
) -> JSONResponse:
    """A problem with its own *title* and *field*; built by the API's one helper."""
    errors = [FieldError(field=field, message=detail)] if field is not None else None
    return api_problem(status, detail, errors, headers, title=title, type_=type_)
