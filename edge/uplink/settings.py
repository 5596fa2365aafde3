"""Uplink settings (placeholder; issue #4 completes them)."""

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class UplinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    username: str | None = Field(default=None, description="MQTT username (the device id).")
    password: SecretStr | None = Field(default=None, description="MQTT password.")
