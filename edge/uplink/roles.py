"""What the uplink needs from the running pipeline, as small roles (tests use tiny fakes)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shared.config import DeviceConfig
from shared.telemetry import CameraHealth


class ConfigTarget(Protocol):
    """Takes a new ``DeviceConfig`` between frames; raises ``ValueError`` (old one kept)."""

    @property
    def config_version(self) -> int: ...

    def apply_config(self, cfg: DeviceConfig) -> None: ...


class SnapshotSource(Protocol):
    def latest_jpeg(self, camera_id: str | None = None) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class PipelineHealth:
    """The pipeline's part of the telemetry."""

    fps: float | None = None
    inference_ms: float | None = None
    cameras: tuple[CameraHealth, ...] = field(default_factory=tuple)


HealthSource = Callable[[], PipelineHealth]
Reloader = Callable[[], str]
"""Re-reads the configuration; returns a short message, raises ``ValueError`` with the reason."""


@dataclass(frozen=True, slots=True)
class DeviceRoles:
    """Everything optional: an uplink without a pipeline still publishes and reports health."""

    config: ConfigTarget | None = None
    snapshot: SnapshotSource | None = None
    health: HealthSource | None = None
    reload: Reloader | None = None
