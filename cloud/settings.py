"""Cloud settings, validated once at start (YAML file and/or ``CITYOPS_CLOUD_*`` env vars)."""

from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MqttClientSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    username: str | None = Field(default=None, description="Service account name.")
    password: SecretStr | None = Field(default=None, description="Service account password.")
    tls_ca: Path | None = Field(default=None, description="CA file; enables TLS when set.")
    client_id: str | None = Field(default=None, description="Client id; generated when unset.")


class InfluxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL.")
    database: str = Field(default="cityops", description="Database (1.x) or DBRP-mapped bucket.")
    retention_policy: str | None = Field(default=None, description="Retention policy name.")
    username: str | None = Field(default=None, description="Basic auth user (1.x).")
    password: SecretStr | None = Field(default=None, description="Basic auth password (1.x).")
    token: SecretStr | None = Field(default=None, description="Token auth (2.x / 3.x).")


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sqlite", "influx"] = Field(
        default="sqlite", description="Embedded SQLite time-series store, or InfluxDB."
    )
    sqlite_path: Path = Field(
        default=Path("var/cityops-ts.sqlite"), description="File of the embedded store."
    )
    influx: InfluxSettings = Field(default_factory=InfluxSettings)


class CloudSettings(BaseSettings):
    """Settings shared by ``cityops cloud ingest`` and ``cityops cloud serve``."""

    model_config = SettingsConfigDict(
        env_prefix="CITYOPS_CLOUD_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = Field(
        default="sqlite:///var/cityops.sqlite",
        description="SQLAlchemy URL of the state database (devices, incidents, keys, audit).",
    )
    mqtt: MqttClientSettings = Field(default_factory=MqttClientSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> Self:
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise TypeError(f"{path}: the top level must be a mapping")
        return cls(**{**data, **overrides})
