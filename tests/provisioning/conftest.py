"""Fixtures: the balena stand-in (real balena-sdk, local server) and real frames."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.balena_config import write_balena_cfg
from provisioning.balena_fleet import BalenaFleet
from tests.provisioning.balena_standin import BalenaStandin

FLEET = "city/cityops-cameras"
PARKING_CLIP = ("parking", "car_parks_in_disabled_bay_composed.mp4")


@pytest.fixture
def standin() -> Iterator[BalenaStandin]:
    server = BalenaStandin()
    server.add_fleet(FLEET, device_type="raspberrypi5")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def balena_dir(tmp_path: Path, standin: BalenaStandin) -> Path:
    data_dir = tmp_path / "balena"
    write_balena_cfg(data_dir, api_endpoint=standin.url)
    return data_dir


@pytest.fixture
def fleet(balena_dir: Path, standin: BalenaStandin) -> BalenaFleet:
    return BalenaFleet(balena_dir, standin.token)


@pytest.fixture(scope="session")
def parking_frame(material: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real frame (20 s in: the sedan parked in the disabled bay) as a JPEG file."""
    import cv2

    clip = material.joinpath("data", *PARKING_CLIP)
    capture = cv2.VideoCapture(str(clip))
    capture.set(cv2.CAP_PROP_POS_MSEC, 20_000)
    ok, frame = capture.read()
    capture.release()
    assert ok, f"cannot read a frame from {clip}"
    path = tmp_path_factory.mktemp("frames") / "parking-20s.jpg"
    assert cv2.imwrite(str(path), frame)
    return path
