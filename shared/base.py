"""Base model and field types shared by every wire message."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.clock import ensure_utc
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


UtcDatetime = Annotated[datetime, AfterValidator(ensure_utc)]
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
ShortText = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
"""A normalised coordinate or a score in [0, 1]."""
