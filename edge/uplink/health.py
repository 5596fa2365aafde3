"""Device health for telemetry: CPU, memory, SoC temperature where readable, plus the pipeline's."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from edge.uplink.outbox import OutboxStats
from edge.uplink.roles import PipelineHealth
from shared.clock import utcnow
from shared.telemetry import Telemetry

logger = logging.getLogger(__name__)

THERMAL_ROOT = Path("/sys/class/thermal")
_MIN_C, _MAX_C = -60.0, 150.0


@dataclass(frozen=True, slots=True)
class SystemHealth:
    cpu_percent: float | None
    memory_percent: float | None
    temperature_c: float | None


def read_temperature(root: Path = THERMAL_ROOT) -> float | None:
    """Highest ``thermal_zone*/temp`` (millidegrees on Linux, Pi and Jetson); None if unreadable."""
    readings = []
    for path in sorted(root.glob("thermal_zone*/temp")):
        try:
            value = int(path.read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
        if _MIN_C <= value <= _MAX_C:
            readings.append(value)
    return max(readings) if readings else None


def read_system(thermal_root: Path = THERMAL_ROOT) -> SystemHealth:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the edge extra
        return SystemHealth(None, None, read_temperature(thermal_root))
    # interval=None: CPU use since the previous call, without blocking the uplink loop.
    return SystemHealth(
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        memory_percent=float(psutil.virtual_memory().percent),
        temperature_c=read_temperature(thermal_root),
    )


class TelemetryBuilder:
    def __init__(self, device_id: str, *, firmware: str | None = None) -> None:
        self.device_id = device_id
        self.firmware = firmware
        self._started = time.monotonic()

    def build(
        self, outbox: OutboxStats, pipeline: PipelineHealth | None, system: SystemHealth
    ) -> Telemetry:
        pipe = pipeline or PipelineHealth()
        return Telemetry(
            device_id=self.device_id,
            ts=utcnow(),
            uptime_s=time.monotonic() - self._started,
            fps=pipe.fps,
            inference_ms=pipe.inference_ms,
            cpu_percent=system.cpu_percent,
            memory_percent=system.memory_percent,
            temperature_c=system.temperature_c,
            outbox_depth=outbox.depth,
            dropped_events=outbox.dropped_events,
            dropped_telemetry=outbox.dropped_telemetry,
            dead_letters=outbox.dead_letters,
            cameras=list(pipe.cameras),
            firmware=self.firmware,
        )
