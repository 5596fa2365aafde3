"""``ApiSettings``: the shared ``CloudSettings`` and its ``api:`` section, for ``cloud serve``.

One ``cloud.yaml`` serves every cloud command: the cloud keys (``database_url``, ``mqtt``,
``store``, ``ingest``) sit at the top level and the API's own keys under ``api:``. ``cloud ingest``
reads the same file as ``CloudSettings`` (which holds ``api`` too).
"""

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.settings import ApiOptions, BrokerFilesSettings, CloudSettings

__all__ = ["ApiOptions", "ApiSettings", "BrokerFilesSettings"]


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cloud: CloudSettings = Field(default_factory=CloudSettings)
    api: ApiOptions = Field(default_factory=ApiOptions)

    @model_validator(mode="after")
    def _one_api_section(self) -> Self:
        """``cloud.api`` is ``api``: the runtime reads it from the cloud settings."""
        if self.cloud.api is not self.api:
            self.cloud = self.cloud.model_copy(update={"api": self.api})
            self.cloud.check_client_ids()
        return self

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> Self:
        cloud = CloudSettings.from_yaml(path, **overrides)
        return cls(cloud=cloud, api=cloud.api)
