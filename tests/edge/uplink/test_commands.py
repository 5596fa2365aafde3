"""The config/command dispatcher with small role fakes (no broker needed for this logic)."""

import json
import random
from datetime import UTC, datetime

import pytest

from edge.uplink.backoff import backoff_delay
from edge.uplink.commands import CommandDispatcher, jpeg_size
from edge.uplink.roles import DeviceRoles, Reloader
from shared.codec import encode
from shared.commands import Command, CommandName
from shared.config import CameraConfig, DeviceConfig, Zone, ZoneKind
from shared.limits import MAX_SNAPSHOT_BYTES
from tests.edge.uplink.helpers import FakePipeline, real_jpeg

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def config(version: int, camera: str = "cam1", device: str = "dev-a") -> DeviceConfig:
    zone = Zone(id="bay", kind=ZoneKind.NO_PARKING, polygon=[(0.1, 0.1), (0.5, 0.1), (0.5, 0.5)])
    return DeviceConfig(
        device_id=device, version=version, cameras=[CameraConfig(id=camera, zones=[zone])]
    )


def dispatcher(pipe: FakePipeline, reload: Reloader | None = None) -> CommandDispatcher:
    roles = DeviceRoles(config=pipe, snapshot=pipe, reload=reload)
    return CommandDispatcher("dev-a", roles, clock=lambda: NOW)


def test_config_is_applied_and_acknowledged_with_its_version() -> None:
    pipe = FakePipeline({"cam1"})
    ack = dispatcher(pipe).on_config(encode(config(3)))
    assert ack is not None
    assert (ack.name, ack.ok, ack.config_version) == (CommandName.CONFIG, True, 3)
    assert pipe.config is not None
    assert pipe.config.cameras[0].zones[0].id == "bay"


def test_same_retained_config_again_is_acked_without_reapplying() -> None:
    pipe = FakePipeline({"cam1"})
    d = dispatcher(pipe)
    for _ in range(3):
        ack = d.on_config(encode(config(3)))
        assert ack is not None
        assert ack.ok
    assert pipe.applied == 1


@pytest.mark.parametrize(
    ("payload", "field", "version"),
    [
        (b"{not json", "payload", None),
        (json.dumps({"device_id": "dev-a", "version": 4, "cameras": "x"}).encode(), "cameras", 4),
        (
            json.dumps({"device_id": "dev-a", "version": 5, "timezone": "Mars/Olympus"}).encode(),
            "timezone",
            5,
        ),
    ],
)
def test_invalid_config_is_refused_naming_the_field(
    payload: bytes, field: str, version: int | None
) -> None:
    pipe = FakePipeline({"cam1"})
    d = dispatcher(pipe)
    assert d.on_config(encode(config(2)))
    ack = d.on_config(payload)
    assert ack is not None
    assert not ack.ok
    assert ack.message.startswith(field)
    assert ack.config_version == version
    assert pipe.config_version == 2  # old one kept


def test_config_the_pipeline_refuses_keeps_the_old_one() -> None:
    pipe = FakePipeline({"cam1"})
    d = dispatcher(pipe)
    d.on_config(encode(config(1)))
    ack = d.on_config(encode(config(2, camera="cam9")))
    assert ack is not None
    assert not ack.ok
    assert "cam9" in ack.message
    assert ack.config_version == 2
    assert pipe.config_version == 1


def test_config_for_another_device_or_older_version_is_refused() -> None:
    pipe = FakePipeline({"cam1"})
    d = dispatcher(pipe)
    d.on_config(encode(config(5)))
    foreign = d.on_config(encode(config(6, device="dev-b")))
    older = d.on_config(encode(config(4)))
    assert foreign is not None
    assert older is not None
    assert not foreign.ok
    assert foreign.message.startswith("device_id")
    assert not older.ok
    assert older.message.startswith("version")
    assert pipe.config_version == 5


def test_empty_retained_config_is_ignored() -> None:
    assert dispatcher(FakePipeline({"cam1"})).on_config(b"") is None


def command(name: CommandName, device: str = "dev-a") -> bytes:
    return encode(Command(id="c-1", device_id=device, name=name, issued_at=NOW))


def test_snapshot_command_returns_the_jpeg_with_its_size() -> None:
    jpeg = real_jpeg(64, 48)
    ack = dispatcher(FakePipeline({"cam1"}, jpeg)).on_command(command(CommandName.SNAPSHOT))
    assert ack is not None
    assert ack.ok
    assert ack.command_id == "c-1"
    assert ack.snapshot is not None
    assert ack.snapshot.data == jpeg
    assert (ack.snapshot.width, ack.snapshot.height) == (64, 48)


@pytest.mark.parametrize(
    ("jpeg", "reason"),
    [(None, "no frame"), (b"\xff\xd8" + b"\0" * MAX_SNAPSHOT_BYTES, "exceeds")],
)
def test_snapshot_without_a_usable_frame_is_a_failed_ack(jpeg: bytes | None, reason: str) -> None:
    ack = dispatcher(FakePipeline({"cam1"}, jpeg)).on_command(command(CommandName.SNAPSHOT))
    assert ack is not None
    assert not ack.ok
    assert reason in ack.message


def test_reload_command_calls_the_reloader_and_reports_failure() -> None:
    calls: list[str] = []

    def reload() -> str:
        calls.append("x")
        if len(calls) > 1:
            raise ValueError("uplink.port: must be <= 65535")
        return "reloaded"

    d = dispatcher(FakePipeline({"cam1"}), reload=reload)
    first = d.on_command(command(CommandName.RELOAD))
    second = d.on_command(command(CommandName.RELOAD))
    assert first is not None
    assert second is not None
    assert (first.ok, first.message) == (True, "reloaded")
    assert (second.ok, second.message) == (False, "uplink.port: must be <= 65535")


def test_command_for_another_device_and_garbage_commands() -> None:
    d = dispatcher(FakePipeline({"cam1"}))
    foreign = d.on_command(command(CommandName.SNAPSHOT, device="dev-b"))
    assert foreign is not None
    assert not foreign.ok
    assert d.on_command(b"{}") is None


def test_jpeg_size_reads_the_frame_header() -> None:
    assert jpeg_size(real_jpeg(321, 123)).width == 321
    assert jpeg_size(real_jpeg(321, 123)).height == 123
    with pytest.raises(ValueError, match="not a JPEG"):
        jpeg_size(b"PNG")


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(a, 0.5, 30.0, rng) for a in range(12)]
    for attempt, delay in enumerate(delays):
        cap = min(30.0, 0.5 * 2**attempt)
        assert cap / 2 <= delay <= cap
    assert len({round(d, 6) for d in delays}) == len(delays)  # jitter: no two alike
    many = [backoff_delay(3, 0.5, 30.0, rng) for _ in range(200)]
    assert max(many) - min(many) > 1.0
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1, 0.5, 30.0, rng)
