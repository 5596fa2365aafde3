"""A camera unit started from a provisioning bundle, for the end-to-end tests.

It runs the project's real device-side uplink (``edge.uplink.mqtt.MqttUplink``: presence,
telemetry, config and command acks) configured by the bundle's ``agent.yaml`` through
``EdgeSettings``; the camera pipeline is replaced by a role that serves a real frame from the
parking footage (``cityops edge run`` was not wired yet when these tests were written).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2

from edge.settings import EdgeSettings
from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from edge.uplink.roles import DeviceRoles
from edge.uplink.settings import OutboxSettings
from shared.config import DeviceConfig


class FrameSnapshots:
    """``SnapshotSource`` serving one real frame, re-encoded small enough for an ack."""

    def __init__(self, frame_path: Path) -> None:
        image = cv2.imread(str(frame_path))
        assert image is not None, frame_path
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])
        assert ok
        self.jpeg = buffer.tobytes()

    def latest_jpeg(self, camera_id: str | None = None) -> bytes | None:
        return self.jpeg


class AppliedConfig:
    """``ConfigTarget`` that keeps what it is given (the zones pushed by ``provision zones``)."""

    def __init__(self) -> None:
        self.applied: list[DeviceConfig] = []

    @property
    def config_version(self) -> int:
        return self.applied[-1].version if self.applied else 0

    def apply_config(self, cfg: DeviceConfig) -> None:
        self.applied.append(cfg)


@contextmanager
def field_unit(
    bundle: Path, frame: Path, workdir: Path
) -> Iterator[tuple[MqttUplink, AppliedConfig]]:
    settings = EdgeSettings.from_yaml(bundle / "agent.yaml")
    assert settings.uplink is not None
    config = AppliedConfig()
    uplink = MqttUplink(
        settings.uplink,
        settings.device_id,
        Outbox(OutboxSettings(path=workdir / "outbox.sqlite3")),
        DeviceRoles(config=config, snapshot=FrameSnapshots(frame)),
        software="field-unit-test",
    )
    uplink.start()
    try:
        yield uplink, config
    finally:
        uplink.stop()
