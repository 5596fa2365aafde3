"""Where the records are in a partner's JSON body (a webhook request or a polled page)."""

from typing import Any

from cloud.connectors.mapping import lookup


def records_of(body: Any, records_path: str | None) -> list[Any]:
    """The list of records in a request body: at *records_path*, else the body (list or one)."""
    data = lookup(body, records_path) if records_path else body
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]
    raise ValueError(f"no record list at {records_path or 'the body'}")
