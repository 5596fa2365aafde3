"""Uplink settings: broker address, credentials, TLS, the durable outbox and its bounds."""

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class TlsSettings(BaseModel):
    """TLS to the broker (port 8883); with a client cert the broker takes its CN as the user."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path = Field(description="Project CA certificate that signed the broker's cert.")
    cert_file: Path | None = Field(
        default=None, description="Device client certificate (CN = device id)."
    )
    key_file: Path | None = Field(default=None, description="Private key of the client cert.")

    @model_validator(mode="after")
    def _cert_needs_key(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("key_file: cert_file and key_file go together")
        return self


class OutboxSettings(BaseModel):
    """The on-disk queue every event goes through before it is published."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        default=Path("outbox.sqlite3"),
        description="SQLite file (WAL, fsync on commit); keep it on persistent storage.",
    )
    max_rows: int = Field(
        default=100_000, ge=10, description="Most messages kept; beyond it the drop order applies."
    )
    max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=64 * 1024, description="Most payload bytes kept."
    )
    max_age_s: float = Field(
        default=7 * 86400.0, ge=1.0, description="Messages older than this are dropped (counted)."
    )


class UplinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port (8883 for TLS).")
    username: str | None = Field(default=None, description="MQTT username (the device id).")
    password: SecretStr | None = Field(default=None, description="MQTT password.")
    client_id: str | None = Field(
        default=None,
        max_length=64,
        description="MQTT client id; defaults to the device id (must be stable for the session).",
    )
    tls: TlsSettings | None = Field(default=None, description="TLS to the broker, if any.")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive.")
    session_expiry_s: int = Field(
        default=7 * 86400,
        ge=0,
        description="MQTT 5 session expiry: the broker keeps subscriptions and queued commands.",
    )
    max_inflight: int = Field(
        default=50, ge=1, le=1000, description="QoS 1 messages published and not yet acknowledged."
    )
    delivery: Literal["stored", "broker"] = Field(
        default="stored",
        description=(
            "When an event leaves the outbox: 'stored' once the cloud confirms it stored it "
            "(EventAck, contract 2; resent with the same id until then), or 'broker' on the "
            "broker's PUBACK (contract 1, agents before issue #17)."
        ),
    )
    confirm_timeout_s: float = Field(
        default=30.0,
        ge=0.5,
        le=3600.0,
        description="An event published and not confirmed this long is sent again (same id).",
    )
    max_unconfirmed: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Events published and waiting for the cloud's confirmation, at most.",
    )
    backoff_initial_s: float = Field(
        default=0.5, gt=0.0, le=60.0, description="First reconnect delay (doubles per attempt)."
    )
    backoff_max_s: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="Longest reconnect delay (before jitter)."
    )
    telemetry_interval_s: float = Field(
        default=30.0, ge=0.2, le=3600.0, description="Seconds between telemetry messages."
    )
    flush_timeout_s: float = Field(
        default=5.0, ge=0.0, le=300.0, description="On shutdown, how long to try to drain."
    )
    outbox: OutboxSettings = Field(default_factory=OutboxSettings, description="Durable outbox.")

    @model_validator(mode="after")
    def _user_requires_password(self) -> Self:
        if self.password is not None and self.username is None:
            raise ValueError("username: a password needs a username")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s: must be >= backoff_initial_s")
        return self
