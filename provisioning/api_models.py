"""What the provisioning CLI sends to and reads from the operations API (``/api/v1``).

Responses are read leniently (unknown fields ignored) so a newer API does not break the field
tool; requests are strict.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeviceUpsert(_Request):
    site: str = Field(min_length=1, max_length=128)
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    device_type: str
    fleet: str | None = None
    department: str | None = None
    note: str = ""
    balena_uuid: str | None = None


Health = Literal["ok", "camera_down", "silent", "offline", "never_seen"]


class DeviceOut(_Response):
    id: str
    site: str = ""
    device_type: str = ""
    fleet: str | None = None
    department: str | None = None
    lat: float | None = None
    lon: float | None = None
    note: str = ""
    balena_uuid: str | None = None
    revoked: bool = False
    online: bool = False
    last_seen: datetime | None = None
    last_telemetry_at: datetime | None = None
    last_event_at: datetime | None = None
    health: str = "never_seen"
    blind_spot: bool = False
    config_version: int = 0
    config_acked_version: int | None = None


class DevicePage(_Response):
    items: list[DeviceOut]
    next_cursor: str | None = None


class MqttCredentials(_Response):
    username: str
    password: SecretStr
    host: str
    port: int = Field(ge=1, le=65535)
    tls_port: int | None = None


class CommandRequest(_Request):
    name: Literal["snapshot", "debug_snapshot", "reload"]
    camera_id: str | None = None
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)


class ConfigAccepted(_Response):
    version: int
