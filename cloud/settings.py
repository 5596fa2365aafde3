"""Cloud settings, validated once at start (YAML file and/or ``CITYOPS_CLOUD_*`` env vars)."""

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cityops.settings_file import build, layered, read_mapping


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
    retention_duration: str | None = Field(
        default=None,
        pattern=r"^(INF|[0-9]+[hdw])$",
        description="Duration of the retention policy created at start (e.g. 90d); needs the name.",
    )
    gzip: bool = Field(default=True, description="Gzip the line protocol sent to /write.")
    timeout_s: float = Field(default=10.0, gt=0.0, description="HTTP timeout per request.")


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sqlite", "influx"] = Field(
        default="sqlite", description="Embedded SQLite time-series store, or InfluxDB."
    )
    sqlite_path: Path = Field(
        default=Path("var/cityops-ts.sqlite"), description="File of the embedded store."
    )
    influx: InfluxSettings = Field(default_factory=InfluxSettings)


class IngestSettings(BaseModel):
    """How ``cityops cloud ingest`` batches, deduplicates and rejects (see docs/ingest.md)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        default=2000, ge=1, le=50_000, description="Store a batch once it holds this many messages."
    )
    batch_interval_s: float = Field(
        default=0.2,
        gt=0.0,
        le=60.0,
        description="Store a non-empty batch at the latest this long after its first message.",
    )
    max_batches_in_flight: int = Field(
        default=2,
        ge=1,
        le=8,
        description=(
            "Batches being stored at once (1: one at a time). Hooks still run in batch order "
            "and every message is acknowledged only after its own batch is stored."
        ),
    )
    share_group: str = Field(
        default="cityops-ingest",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT 5 shared-subscription group: ingestors in one group split the load.",
    )
    client: Literal["wire", "aiomqtt"] = Field(
        default="wire",
        description=(
            "MQTT client: 'wire', the ingestor's own MQTT 5 subscriber (many messages per read, "
            "acks in bulk; the fast one), or 'aiomqtt' (paho underneath)."
        ),
    )
    session_expiry_s: int = Field(
        default=600,
        ge=0,
        le=86_400,
        description=(
            "How long the broker keeps the session (and queues messages) while offline; bounded, "
            "so a worker that never comes back holds its share of the stream only this long."
        ),
    )
    leave_on_stop: bool = Field(
        default=False,
        description=(
            "On stop, leave the share group cleanly (unsubscribe, drain, end the session): for "
            "scale-down. Off: the session waits session_expiry_s for this worker to return."
        ),
    )
    receive_maximum: int = Field(
        default=20_000,
        ge=1,
        le=65_535,
        description="Unacknowledged QoS 1 messages the broker may have in flight to this ingestor.",
    )
    dedup_window_s: float = Field(
        default=7 * 86_400.0,
        gt=0.0,
        description=(
            "Event ids are remembered this long; an event whose id is older is refused as a replay."
        ),
    )
    max_future_skew_s: float = Field(
        default=300.0,
        ge=0.0,
        le=86_400.0,
        description="A timestamp further ahead of the ingestor's clock is refused.",
    )
    dead_letter_payload_bytes: int = Field(
        default=2048, ge=0, le=65_536, description="Raw payload bytes kept with a dead letter."
    )
    dead_letter_max_rows: int = Field(
        default=100_000,
        ge=10,
        description="Dead letters kept; older ones are deleted, so a flood cannot fill the disk.",
    )
    retry_initial_s: float = Field(
        default=0.5, gt=0.0, description="First wait before retrying a store that is down."
    )
    retry_max_s: float = Field(
        default=10.0, gt=0.0, description="Longest wait between store retries (backoff cap)."
    )


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
    ingest: IngestSettings = Field(default_factory=IngestSettings)

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> Self:
        """Read *path*: ``CITYOPS_CLOUD_*`` variables win over the file, *overrides* over both.

        Raises ``SettingsFileError`` (a ``ValueError``) naming the file and the field.
        """
        return build(cls, path, layered(cls, read_mapping(path), overrides))
