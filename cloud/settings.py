"""Cloud settings, validated once at start (YAML file and/or ``CITYOPS_CLOUD_*`` env vars)."""

import os
import socket
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cityops.settings_file import build, layered, read_mapping
from cloud.console.settings import ConsoleOptions


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


class BrokerFilesSettings(BaseModel):
    """Where the broker's password and ACL files live, so device credentials reach it."""

    model_config = ConfigDict(extra="forbid")
    passwd: Path = Field(description="Mosquitto password_file the API regenerates.")
    acl: Path = Field(description="Mosquitto acl_file the API regenerates.")
    pid_file: Path | None = Field(default=None, description="Mosquitto pid file, for SIGHUP.")
    services: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Service accounts kept in the password file: username -> password. "
        "Role by name: '*-ingest' ingest, '*-admin' admin, '*-dispatch' dispatch (publishes "
        "incident changes), '*-incidents' or a name in incident_readers: incidents (reads "
        "them: Home Assistant, Node-RED), others operator.",
    )
    incident_readers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Accounts of role incidents that read only some departments: username -> "
        "department ids (the username must be in services too).",
    )
    public_host: str = Field(default="127.0.0.1", description="Broker host given to devices.")
    public_port: int = Field(default=1883, ge=1, le=65535, description="Broker port for devices.")
    public_tls_port: int | None = Field(default=None, description="TLS port for devices.")


class ApiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port to listen on.")
    rules_path: Path | None = Field(
        default=None, description="Routing rules YAML; the packaged default when unset."
    )
    sla_check_interval_s: float = Field(
        default=15.0, gt=0, le=3600, description="How often SLA deadlines are checked."
    )
    silent_after_s: float = Field(
        default=180.0, gt=0, description="A device unheard of for this long is 'silent'."
    )
    mqtt_enabled: bool = Field(default=True, description="Keep an MQTT connection for configs.")
    mqtt: MqttClientSettings | None = Field(
        default=None,
        description="The API's own MQTT account (operator role); the cloud `mqtt` when unset.",
    )
    broker_files: BrokerFilesSettings | None = Field(
        default=None, description="Set to let the API manage device credentials on the broker."
    )
    console: ConsoleOptions = Field(
        default_factory=ConsoleOptions, description="The operator console (docs/console.md)."
    )


class IntegrationFiles(BaseModel):
    """The integration files every cloud process reads (docs/integrations.md)."""

    model_config = ConfigDict(extra="forbid")
    dispatch: Path | None = Field(
        default=None,
        description="dispatch.yaml: where incident changes go (webhook, e-mail, MQTT topic). "
        "Read by every API and ingest process: whichever changes an incident queues its "
        "deliveries in the same transaction.",
    )
    sources: Path | None = Field(
        default=None,
        description="sources.yaml: connectors of other city systems, run by `cloud serve`.",
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
    integrations: IntegrationFiles = Field(default_factory=IntegrationFiles)
    api: ApiOptions = Field(
        default_factory=ApiOptions,
        description="The operations API (`cloud serve`); read by `cloud ingest` for rules_path.",
    )

    @model_validator(mode="after")
    def _client_ids_apart(self) -> Self:
        self.check_client_ids()
        return self

    def check_client_ids(self) -> None:
        """Refuse an API client id that would take over an ingestor's MQTT session."""
        ingest_base = ingest_client_base(self)
        api_base = api_client_base(self)
        for name, base in (("mqtt.client_id", ingest_base), ("api.mqtt.client_id", api_base)):
            if base.startswith(DISPATCH_CLIENT_PREFIX):
                raise ValueError(
                    f"{name} {base!r}: client ids starting {DISPATCH_CLIENT_PREFIX!r} are the "
                    "dispatcher's own; choose another"
                )
        if api_base == ingest_base:
            raise ValueError(
                f"api.mqtt.client_id and mqtt.client_id are both {ingest_base!r}: the API's MQTT "
                "connection would take over the ingestor's persistent session (lost events); "
                "set a different api.mqtt.client_id or leave it unset"
            )

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> Self:
        """Read *path*: ``CITYOPS_CLOUD_*`` variables win over the file, *overrides* over both.

        Raises ``SettingsFileError`` (a ``ValueError``) naming the file and the field.
        """
        return build(cls, path, layered(cls, read_mapping(path), overrides))


ClientRole = Literal["ingest", "api", "dispatch"]
DISPATCH_CLIENT_PREFIX = "cityops-dispatch-"


def dispatch_client_id() -> str:
    """Client id of this process's dispatch connections (``mqtt`` routes of dispatch.yaml).

    ``cityops-dispatch-<host>-<pid>``: one per process on every host, never an ingest or API id
    (``CloudSettings`` refuses bases with this prefix).
    """
    return f"{DISPATCH_CLIENT_PREFIX}{socket.gethostname()[:30]}-{os.getpid()}"


def ingest_client_base(settings: CloudSettings) -> str:
    """``mqtt.client_id``, or ``cityops-ingest-<host>`` when unset."""
    return settings.mqtt.client_id or f"cityops-ingest-{socket.gethostname()}"[:56]


def api_client_base(settings: CloudSettings) -> str:
    """``api.mqtt.client_id``, or ``cityops-api-<host>`` when unset (never the ingest id)."""
    explicit = settings.api.mqtt.client_id if settings.api.mqtt is not None else None
    return explicit or f"cityops-api-{socket.gethostname()}"[:52]


def mqtt_client_id(
    settings: CloudSettings,
    role: ClientRole,
    *,
    instance: int | None = None,
    worker: int | None = None,
) -> str:
    """The MQTT client id of one connection the cloud opens: the one place it is derived.

    - ``ingest``: ``<mqtt.client_id>`` for a lone ingestor, ``-i<instance>`` added for
      ``cloud ingest --instance N`` (systemd ``cityops-ingest@N``) and ``-<worker>`` for each
      ``--workers`` process. Stable across restarts, so the persistent session is resumed;
      distinct for every (instance, worker), so no two processes share a session.
    - ``api``: ``<api.mqtt.client_id>-<pid>`` (clean start, nothing to resume; *instance*
      replaces the pid in tests), so API processes (``serve --workers N``) never share one.

    - ``dispatch``: ``cityops-dispatch-<host>-<pid>`` (``dispatch_client_id``).

    ``CloudSettings`` refuses an API base equal to the ingest base; two running ingest processes
    with one id are refused at start by a lease on PostgreSQL (``cloud.runtime.postgres``).
    """
    if role == "dispatch":
        return dispatch_client_id()
    if role == "ingest":
        client_id = ingest_client_base(settings)[:52]
        if instance is not None:
            client_id += f"-i{instance}"
        if worker is not None:
            client_id += f"-{worker}"
        return client_id
    return f"{api_client_base(settings)}-{os.getpid() if instance is None else instance}"
