"""Per-source connector configuration (``sources.yaml``): joining a system is a config change."""

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from cloud.connectors.mapping import Mapping_
from shared.codec import field_of
from shared.limits import DEVICE_ID_PATTERN

SOURCE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,46}$"
_SOURCE_RE = re.compile(SOURCE_ID_PATTERN)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def secret_from_env(name: str | None, field: str) -> SecretStr | None:
    """The secret in environment variable *name*; config files name variables, never secrets."""
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"{field}: environment variable {name} is not set")
    return SecretStr(value)


class SourceBase(_Strict):
    id: str = Field(
        pattern=SOURCE_ID_PATTERN, description="Source id, e.g. lisbon-air (lower case)."
    )
    name: str = Field(default="", description="Human name of the partner system.")
    device_id: str | None = Field(
        default=None,
        pattern=DEVICE_ID_PATTERN,
        description="Virtual device id of this source; default 'ext-<id>'.",
    )
    enabled: bool = True
    mapping: Mapping_ = Field(description="How one record becomes an Event or Telemetry.")

    @property
    def virtual_device_id(self) -> str:
        return self.device_id or f"ext-{self.id}"


class WebhookSource(SourceBase):
    """A partner POSTs records to ``/api/v1/connectors/{id}/webhook``."""

    type: Literal["webhook"]
    auth: Literal["hmac", "token"] = Field(
        default="hmac", description="hmac: HMAC-SHA256 of '<timestamp>.<body>'; token: bearer."
    )
    secret_env: str = Field(description="Environment variable holding the shared secret/token.")
    signature_header: str = "X-CityOps-Signature"
    timestamp_header: str = "X-CityOps-Timestamp"
    replay_window_s: float = Field(default=300.0, gt=0, le=3600)
    rate_per_s: float = Field(default=10.0, gt=0, description="Sustained requests per second.")
    burst: int = Field(default=20, ge=1, description="Requests allowed at once.")
    records_path: str | None = Field(
        default=None, description="Path of the record list in the body; else body or [body]."
    )


class Pagination(_Strict):
    next_path: str | None = Field(default=None, description="Path of the next page URL.")
    page_param: str | None = Field(default=None, description="Page number query parameter.")
    first_page: int = 1
    max_pages: int = Field(default=100, ge=1)


class RestPollSource(SourceBase):
    """CityOps polls a partner API every ``interval_s``."""

    type: Literal["rest_poll"]
    url: str = Field(pattern=r"^https?://", description="First page URL.")
    interval_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    header_env: dict[str, str] = Field(
        default_factory=dict, description="Header name → environment variable with its value."
    )
    records_path: str | None = None
    pagination: Pagination = Field(default_factory=Pagination)
    since_param: str | None = Field(default=None, description="Query parameter of the cursor.")
    cursor_path: str | None = Field(default=None, description="Record field that advances it.")
    backoff_initial_s: float = Field(default=5.0, gt=0)
    backoff_max_s: float = Field(default=600.0, gt=0)
    state_dir: Path | None = Field(default=None, description="Where the cursor is kept.")

    @model_validator(mode="after")
    def _cursor_pair(self) -> Self:
        if (self.since_param is None) != (self.cursor_path is None):
            raise ValueError("since_param: set since_param and cursor_path together")
        return self


class MqttBridgeSource(SourceBase):
    """Records arrive as JSON on a partner broker's topic tree."""

    type: Literal["mqtt_bridge"]
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = None
    tls_ca: Path | None = Field(default=None, description="CA file; enables TLS when set.")
    tls_cert: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    tls_key: Path | None = Field(default=None, description="Key of the client certificate.")
    topics: list[str] = Field(min_length=1, description="Topic filters, wildcards allowed.")
    qos: Literal[0, 1, 2] = 1
    reconnect_initial_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert: set tls_cert and tls_key together")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("tls_ca: a client certificate needs the broker's CA (tls_ca)")
        return self


class FileDropSource(SourceBase):
    """A system exports CSV or JSON Lines files into a directory."""

    type: Literal["file_drop"]
    directory: Path
    patterns: list[str] = Field(default_factory=lambda: ["*.csv", "*.jsonl"])
    poll_s: float = Field(default=5.0, gt=0)
    csv_delimiter: str = Field(default=",", min_length=1, max_length=1)


class NgsiLdSource(SourceBase):
    """A context broker (Orion-LD, Scorpio...) notifies ``/ngsi-ld/v1/notify/{id}``."""

    type: Literal["ngsi_ld"]
    secret_env: str = Field(description="Environment variable with the bearer token.")
    token_header: str = "Authorization"  # noqa: S105 - a header name, not a secret
    rate_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=50, ge=1)


Source = Annotated[
    WebhookSource | RestPollSource | MqttBridgeSource | FileDropSource | NgsiLdSource,
    Field(discriminator="type"),
]


class SourcesConfig(_Strict):
    sources: list[Source] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for source in self.sources:
            if source.id in seen:
                raise ValueError(f"sources: duplicate source id {source.id!r}")
            seen.add(source.id)
        return self

    def get(self, source_id: str) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)


class SourcesConfigError(ValueError):
    def __init__(self, path: Path, field: str, reason: str) -> None:
        super().__init__(f"{path}: {field}: {reason}")
        self.field = field


def load_sources(path: Path) -> SourcesConfig:
    """Read and validate ``sources.yaml``; errors name the file and the field."""
    data = yaml.safe_load(path.read_text()) or {}
    try:
        return SourcesConfig.model_validate(data)
    except ValidationError as exc:
        field, reason = field_of(exc)
        raise SourcesConfigError(path, field, reason) from exc


def is_source_id(value: str) -> bool:
    return bool(_SOURCE_RE.match(value))
