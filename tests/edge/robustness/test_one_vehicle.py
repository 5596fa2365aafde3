"""One vehicle, one violation (issue #19, item 4) on the provided parking-lot clip.

On a lot of parked cars the detector returns overlapping "ghost" boxes (one straddling two
cars); each became its own track and its own ``illegal_parking`` event for the same zone in the
same second. Zones here are drawn around parked cars that their neighbours touch.
"""

from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np

from cityops.paths import data_path
from edge.camera.frame import Frame
from edge.pipeline import Pipeline
from edge.settings import EdgeSettings
from shared.events import Event, EventKind, Phase
from tests.edge.robustness.footage import START


def zone(zone_id: str, x1: float, y1: float, x2: float, y2: float) -> dict[str, object]:
    return {
        "id": zone_id,
        "kind": "no_parking",
        "polygon": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]],
        "dwell_limit_s": 3,
    }


def test_parked_cars_with_touching_neighbours_give_one_event_per_zone(material: Path) -> None:
    del material
    settings = EdgeSettings(
        device_id="cam-lot-01",
        cameras=[{"id": "lot", "source": "lot.mp4"}],
        device_config={
            "device_id": "cam-lot-01",
            "cameras": [
                {
                    "id": "lot",
                    "zones": [
                        # The car PROVENANCE.md names, at about (78,313)-(138,364) px of 856x480.
                        zone("one-car", 0.09, 0.65, 0.17, 0.77),
                        # Its left neighbours: three cars whose boxes overlap each other.
                        zone("left-car", 0.03, 0.64, 0.10, 0.76),
                    ],
                    "rules": {"min_score": 0.35},
                }
            ],
        },
    )
    pipe = Pipeline.from_settings(settings)
    cap = cv2.VideoCapture(str(data_path("parking", "parkinglot_static_cam.mp4")))
    events: list[Event] = []
    index = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            ts = index / 15.0
            frame = Frame("lot", np.asarray(image, np.uint8), ts, START + timedelta(seconds=ts))
            events += pipe.process(frame)
            index += 1
    finally:
        cap.release()
    assert index == 203
    starts = [e for e in events if e.kind is EventKind.ILLEGAL_PARKING and e.phase is Phase.START]
    by_zone = sorted(e.zone_id or "" for e in starts)
    assert by_zone == ["left-car", "one-car"], [
        (e.zone_id, (e.observed_at - START).total_seconds(), e.objects) for e in starts
    ]
    # Parked from the first frame: stationary after the 3 s speed window, then the 3 s limit.
    for e in starts:
        assert 5.0 <= (e.observed_at - START).total_seconds() <= 8.0
