"""``provision verify``: is the new unit really working? A pass/fail checklist."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from provisioning.api_client import OpsApiClient
from provisioning.api_models import CommandRequest, DeviceOut
from provisioning.errors import ApiError
from provisioning.zones import decode_jpeg


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    device_id: str
    checks: list[Check]
    snapshot_jpeg: bytes | None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _wait_for_presence(
    api: OpsApiClient,
    device_id: str,
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
) -> DeviceOut:
    """Poll until the device is online with telemetry (or *timeout_s* has passed)."""
    deadline = time.monotonic() + timeout_s
    device = api.get_device(device_id)
    while not (device.online and device.last_telemetry_at is not None) and not device.revoked:
        if time.monotonic() >= deadline:
            break
        sleep(poll_s)
        device = api.get_device(device_id)
    return device


def verify_device(
    api: OpsApiClient,
    device_id: str,
    *,
    timeout_s: float = 60.0,
    poll_s: float = 1.0,
    snapshot_wait_s: float = 15.0,
    camera_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyReport:
    device = _wait_for_presence(api, device_id, timeout_s, poll_s, sleep)
    checks = [
        Check(
            "registered, not revoked",
            not device.revoked,
            f"site {device.site}, {device.device_type}" if not device.revoked else "revoked",
        ),
        Check(
            "status online (MQTT, own credentials)",
            device.online,
            f"last seen {device.last_seen:%H:%M:%S}" if device.last_seen else "never seen",
        ),
        Check(
            "telemetry received",
            device.last_telemetry_at is not None,
            f"at {device.last_telemetry_at:%H:%M:%S}, health {device.health}"
            if device.last_telemetry_at
            else f"none within {timeout_s:g} s",
        ),
    ]
    jpeg: bytes | None = None
    if device.online:
        check, jpeg = _snapshot_check(api, device_id, camera_id, snapshot_wait_s)
        checks.append(check)
    else:
        checks.append(Check("camera delivers frames (snapshot)", ok=False, detail="device offline"))
    if device.config_version > 0:
        acked = device.config_acked_version
        checks.append(
            Check(
                "zones config acknowledged",
                acked == device.config_version,
                f"version {device.config_version}, device has {acked}",
            )
        )
    return VerifyReport(device_id=device_id, checks=checks, snapshot_jpeg=jpeg)


def _snapshot_check(
    api: OpsApiClient, device_id: str, camera_id: str | None, wait_s: float
) -> tuple[Check, bytes | None]:
    name = "camera delivers frames (snapshot)"
    try:
        answer = api.send_command(
            device_id, CommandRequest(name="snapshot", camera_id=camera_id), wait=wait_s
        )
    except ApiError as exc:
        return Check(name, ok=False, detail=str(exc)), None
    if isinstance(answer, str):
        return Check(name, ok=False, detail=f"no answer within {wait_s:g} s"), None
    if not answer.ok or answer.snapshot is None:
        return Check(name, ok=False, detail=answer.message or "no image in the answer"), None
    image = decode_jpeg(answer.snapshot.data)
    if image is None:
        return Check(name, ok=False, detail="the image is not a valid JPEG"), None
    height, width = image.shape[:2]
    detail = f"{width}x{height} JPEG, {len(answer.snapshot.data) // 1024} KiB"
    return Check(name, ok=True, detail=detail), answer.snapshot.data
