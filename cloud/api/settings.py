"""``ApiSettings``: the shared ``CloudSettings`` plus what only the operations API needs.

In the YAML file the cloud keys (``database_url``, ``mqtt``, ``store``, ...) sit at the top level
and the API's own keys under ``api:``.
"""

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cityops.settings_file import build, layered, read_mapping
from cloud.console.settings import ConsoleOptions
from cloud.settings import CloudSettings, MqttClientSettings


class BrokerFilesSettings(BaseModel):
    """Where the broker's password and ACL files live, so device credentials reach it."""

    model_config = ConfigDict(extra="forbid")
    passwd: Path = Field(description="Mosquitto password_file the API regenerates.")
    acl: Path = Field(description="Mosquitto acl_file the API regenerates.")
    pid_file: Path | None = Field(default=None, description="Mosquitto pid file, for SIGHUP.")
    services: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Service accounts kept in the password file: username -> password. "
        "Roles: 'cityops-ingest' ingest, 'cityops-admin' admin, others operator.",
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


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cloud: CloudSettings = Field(default_factory=CloudSettings)
    api: ApiOptions = Field(default_factory=ApiOptions)

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> Self:
        """Read *path*; ``CITYOPS_CLOUD_*`` variables win over its cloud keys, overrides over both.

        Raises ``SettingsFileError`` (a ``ValueError``) naming the file and the field; fields of
        the ``api:`` section are named ``api.<field>``.
        """
        data = read_mapping(path)
        api = data.pop("api", {}) or {}
        cloud = build(CloudSettings, path, layered(CloudSettings, data, overrides))
        return build(cls, path, {"cloud": cloud, "api": api})
