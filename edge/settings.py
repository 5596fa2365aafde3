"""Edge agent settings (placeholder until issue #3 defines them in full)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYOPS_EDGE_", extra="forbid")
