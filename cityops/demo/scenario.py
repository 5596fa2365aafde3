"""What the demo shows: camera units in Lisbon streets, each replaying a real clip."""

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class DemoCamera:
    device_id: str
    site: str
    lat: float
    lon: float
    example: str
    """Agent config in ``edge/examples/`` (zones drawn for that clip)."""
    clip: str
    """Video under the material's ``data/`` folder."""
    story: str
    in_short_mode: bool = True


SCENARIO: Final = (
    DemoCamera(
        device_id="cam-baixa-01",
        site="baixa-rua-augusta",
        lat=38.7107,
        lon=-9.1367,
        example="parking-disabled-bay.yaml",
        clip="parking/car_parks_in_disabled_bay_composed.mp4",
        story="a car parks in the disabled bay and stays",
    ),
    DemoCamera(
        device_id="cam-cais-02",
        site="cais-do-sodre",
        lat=38.7057,
        lon=-9.1445,
        example="aboda-abandoned.yaml",
        clip="abandoned/aboda_video4.avi",
        story="a man leaves a bag by a utility box and walks away",
    ),
    DemoCamera(
        device_id="cam-circular-03",
        site="segunda-circular",
        lat=38.7569,
        lon=-9.1647,
        example="motorway.yaml",
        clip="traffic/motorway_traffic.mp4",
        story="moving motorway traffic: nothing to report",
        in_short_mode=False,
    ),
)

EXPECTED_KINDS: Final = ("illegal_parking", "abandoned_object")
"""Incidents the demo must produce (one each); the motorway must add none."""
