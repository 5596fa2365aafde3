"""Proposed additive field for ``shared.config.DeviceConfig``: ``sensors`` (thresholds, sleep).

``DeviceConfig`` forbids unknown fields, so until the lead adds ``sensors`` to it the operations
API cannot publish thresholds; ``SensorNodeConfig`` is that future ``DeviceConfig`` and is what the
node's parser (``firmware.sensor_node.config``) is tested against.
"""

from typing import Annotated, Literal, Self

from pydantic import Field, StrictBool, StringConstraints, model_validator

from shared.base import LocalId, WireModel
from shared.config import DeviceConfig
from shared.events import Severity

ReadingName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class SensorThreshold(WireModel):
    """A ``sensor_threshold`` rule: start past ``level``, end past ``clear`` (hysteresis)."""

    id: LocalId = Field(description="Rule id; the events carry it as zone_id.")
    reading: ReadingName = Field(description="Telemetry reading name, e.g. pm25_ugm3.")
    direction: Literal["above", "below"] = Field(
        default="above", description="'above': values >= level start an event."
    )
    level: float = Field(description="Value that starts an event.")
    clear: float = Field(description="Value that ends it; on the safe side of level.")
    severity: Severity = Severity.MEDIUM

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if (self.direction == "above" and self.clear > self.level) or (
            self.direction == "below" and self.clear < self.level
        ):
            raise ValueError("clear: must lie on the safe side of level (hysteresis)")
        return self


class SensorSettings(WireModel):
    thresholds: list[SensorThreshold] = Field(default_factory=list, max_length=16)
    deep_sleep: StrictBool = Field(
        default=False, description="Deep-sleep between readings (battery nodes; >= 60 s intervals)."
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [t.id for t in self.thresholds]
        if len(ids) != len(set(ids)):
            raise ValueError("thresholds: rule ids must be unique")
        return self


class SensorNodeConfig(DeviceConfig):
    """``DeviceConfig`` plus the proposed ``sensors`` field (``None`` on camera units)."""

    sensors: SensorSettings | None = None
