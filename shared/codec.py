"""Decoding wire payloads: size check, JSON + schema validation, errors that name the field."""

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import ContractError, PayloadTooLargeError
from shared.limits import MAX_PAYLOAD_BYTES

M = TypeVar("M", bound=BaseModel)


def field_of(exc: ValidationError) -> tuple[str, str]:
    """(dotted field path, reason) of the first error in *exc*."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    msg = str(err["msg"])
    if not loc:
        # Model-level validators write "field: reason" (see shared.events.Event).
        reason = msg.removeprefix("Value error, ")
        head, sep, tail = reason.partition(": ")
        if sep and head.replace("_", "").replace(".", "").isalnum():
            return head, tail
        return "payload", reason
    return loc, msg


def decode(model: type[M], payload: bytes | str, *, limit: int = MAX_PAYLOAD_BYTES) -> M:
    """Validate *payload* as *model*; raise ``ContractError`` (never anything else) on bad input."""
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > limit:
        raise PayloadTooLargeError(size, limit)
    try:
        # ``model.model_validate_json(payload)`` without the Python wrapper around the validator.
        obj: M = model.__pydantic_validator__.validate_json(payload)
    except ValidationError as exc:
        field, reason = field_of(exc)
        raise ContractError(field, reason) from exc
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - defensive
        raise ContractError("payload", str(exc)[:200]) from exc
    return obj


def encode(message: BaseModel) -> bytes:
    data = message.model_dump_json(exclude_none=True).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(len(data), MAX_PAYLOAD_BYTES)
    return data
