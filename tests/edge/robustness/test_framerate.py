"""Frame-rate independence (issue #20, item 4): every time constant is in seconds.

The same scripted scene (a car drives into a no-parking bay and stays; a person puts a bag
down, stands beside it, leaves) through the whole pipeline (motion gate, tracker, stillness,
static foreground, rules) at 30, 10 and 5 fps gives the same events within one frame period of
the slower rate.
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge.camera.frame import Frame, Image
from edge.detect.base import Detection
from edge.detect.regions import Rect, Region
from edge.pipeline import Pipeline
from edge.settings import EdgeSettings
from shared.events import EventKind, Phase

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SCENE = np.random.default_rng(5).integers(70, 150, (120, 160, 3), dtype=np.uint8)
BAG = (slice(80, 90), slice(100, 108))  # rows, columns of the bag in the image
OWNER = Rect(0.69, 0.45, 0.76, 0.8)  # standing beside the bag
CAR_STOPS_S, BAG_DOWN_S, OWNER_LEAVES_S, END_S = 4.0, 6.0, 10.0, 22.0


class SceneDetector:
    """Returns the scripted objects present at ``now`` (set by the test before each frame)."""

    name = "scene"
    version = "1"

    def __init__(self) -> None:
        self.now = 0.0

    def detect(self, image: Image, region: Region | None = None) -> list[Detection]:
        del image, region
        x = 0.05 + 0.35 * min(self.now, CAR_STOPS_S) / CAR_STOPS_S
        found = [Detection("car", 0.8, Rect(x, 0.1, x + 0.2, 0.3))]
        if BAG_DOWN_S - 1.0 <= self.now < OWNER_LEAVES_S:
            found.append(Detection("person", 0.8, OWNER))
        return found


def image(ts: float) -> Image:
    img = SCENE.copy()
    if ts >= BAG_DOWN_S:
        img[BAG] = 20
    return img


def settings() -> EdgeSettings:
    return EdgeSettings(
        device_id="cam-01",
        cameras=[{"id": "cam", "source": "scene.mp4"}],
        motion={"enabled": False},
        snapshot={"blur_faces": False},
        device_config={
            "device_id": "cam-01",
            "cameras": [
                {
                    "id": "cam",
                    "zones": [
                        {
                            "id": "bay",
                            "kind": "no_parking",
                            "polygon": [[0.35, 0.05], [0.65, 0.05], [0.65, 0.35], [0.35, 0.35]],
                            "dwell_limit_s": 5,
                        },
                        {
                            "id": "walk",
                            "kind": "abandoned_watch",
                            "polygon": [[0.4, 0.4], [1.0, 0.4], [1.0, 1.0], [0.4, 1.0]],
                            "dwell_limit_s": 5,
                        },
                    ],
                    "rules": {"owner_grace_s": 3},
                }
            ],
        },
    )


def starts(fps: float) -> dict[EventKind, list[float]]:
    detector = SceneDetector()
    pipe = Pipeline(settings(), detector)
    out: dict[EventKind, list[float]] = {}
    for i in range(int(END_S * fps)):
        ts = i / fps
        detector.now = ts
        for e in pipe.process(Frame("cam", image(ts), ts, AT + timedelta(seconds=ts), i)):
            if e.phase is Phase.START:
                out.setdefault(e.kind, []).append((e.observed_at - AT).total_seconds())
    return out


@pytest.fixture(scope="module")
def at_30fps() -> dict[EventKind, list[float]]:
    return starts(30.0)


def test_scene_at_30fps_gives_the_expected_events(at_30fps: dict[EventKind, list[float]]) -> None:
    assert set(at_30fps) == {EventKind.ILLEGAL_PARKING, EventKind.ABANDONED_OBJECT}
    (parked,) = at_30fps[EventKind.ILLEGAL_PARKING]
    # Stationary once a 3 s speed window is still (~2.7 s after it stops), then the 5 s limit.
    assert CAR_STOPS_S + 5.0 + 2.0 <= parked <= CAR_STOPS_S + 5.0 + 3.5
    (left,) = at_30fps[EventKind.ABANDONED_OBJECT]
    # Owner last near at 10 s, unattended after the 3 s grace, then the 5 s limit.
    assert OWNER_LEAVES_S + 3.0 + 5.0 - 0.2 <= left <= OWNER_LEAVES_S + 3.0 + 5.0 + 0.2


@pytest.mark.parametrize("fps", [10.0, 5.0])
def test_scene_at_lower_fps_gives_the_same_events_within_a_frame(
    at_30fps: dict[EventKind, list[float]], fps: float
) -> None:
    lower = starts(fps)
    assert set(lower) == set(at_30fps)
    for kind, times in at_30fps.items():
        assert len(lower[kind]) == len(times)
        for a, b in zip(times, lower[kind], strict=True):
            assert abs(a - b) <= 1.0 / fps + 1e-6, (kind, a, b)
