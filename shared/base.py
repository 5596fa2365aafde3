"""Base model and field types shared by every wire message."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from shared.clock import NAIVE_TIMESTAMP, ensure_utc
from shared.limits import DEVICE_ID_PATTERN, LOCAL_ID_PATTERN, MAX_TEXT


class WireModel(BaseModel):
    """Frozen, strict about unknown fields, bytes as base64 in JSON."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        ser_json_bytes="base64",
        val_json_bytes="base64",
        str_strip_whitespace=False,
        validate_default=False,
    )


class NativeCheck:
    """Run a pydantic-core check after a field's own schema, failing with a fixed reason.

    ``NativeCheck(core_schema.str_schema(pattern=...), reason)`` does what an ``AfterValidator``
    raising ``ValueError(reason)`` does, without calling Python for every value: the type errors
    of the field's own schema are unchanged, and a failing *check* reports ``type="value_error"``
    and ``msg="Value error, <reason>"``, like the Python validator it replaces.
    The JSON Schema is the field's own (``chain`` documents its first step).
    """

    __slots__ = ("check", "reason")

    def __init__(self, check: CoreSchema, reason: str) -> None:
        self.check = check
        self.reason = reason

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        own = handler(source)
        checked = core_schema.custom_error_schema(
            self.check, "value_error", custom_error_context={"error": self.reason}
        )

        def own_json_schema(
            _schema: CoreSchema, json_handler: GetJsonSchemaHandler
        ) -> JsonSchemaValue:
            # Both modes document the field's own type (serialization would take the last step).
            return json_handler(own)

        return core_schema.chain_schema(
            [own, checked], metadata={"pydantic_js_functions": [own_json_schema]}
        )


AWARE = NativeCheck(core_schema.datetime_schema(tz_constraint="aware"), NAIVE_TIMESTAMP)
"""Refuses naive datetimes in pydantic-core, with the error ``ensure_utc`` gives."""
UtcDatetime = Annotated[datetime, AfterValidator(ensure_utc)]
AwareDatetime = Annotated[datetime, AWARE]
"""Timezone-aware, *not yet converted* to UTC: the model does it (see ``shared.events.Event``)."""
DeviceId = Annotated[
    str,
    StringConstraints(pattern=DEVICE_ID_PATTERN),
    Field(description="Device id: lower-case letters, digits, '-' and '_', 1-63 characters."),
]
LocalId = Annotated[
    str,
    StringConstraints(pattern=LOCAL_ID_PATTERN),
    Field(description="Camera/zone/line id: letters, digits, '.', '-', '_', 1-63 characters."),
]
NO_NUL = NativeCheck(
    core_schema.str_schema(pattern=r"^[^\x00]*$"), "text must not contain NUL (U+0000)"
)
"""Refuses U+0000, which PostgreSQL text and JSONB cannot store (an incident title, say)."""
ShortText = Annotated[str, StringConstraints(max_length=MAX_TEXT), NO_NUL]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
"""A normalised coordinate or a score in [0, 1]."""
