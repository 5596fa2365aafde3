"""Pipeline interface used by the agent: config changes, stats, snapshots, the run loop."""

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera.frame import Frame, Image
from edge.detect.base import Detection
from edge.detect.regions import Rect, Region
from edge.pipeline import Pipeline, merge, run
from edge.privacy.faces import BlazeFaceBlurrer
from edge.settings import EdgeSettings
from edge.sink import ListSink
from shared.config import CameraConfig, DeviceConfig, Zone, ZoneKind
from shared.events import EventKind, Phase
from shared.telemetry import CameraState

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class ScriptedDetector:
    """Returns the same boxes for every region it is asked about (a protocol fake)."""

    name = "scripted"
    version = "1"

    def __init__(self, detections: list[Detection]) -> None:
        self.detections = detections
        self.calls = 0

    def detect(self, image: Image, region: Region | None = None) -> list[Detection]:
        self.calls += 1
        return list(self.detections)


def settings(**extra: object) -> EdgeSettings:
    return EdgeSettings(
        device_id="cam-01",
        cameras=[{"id": "front", "source": "clip.mp4"}, {"id": "back", "source": "0"}],
        **extra,  # type: ignore[arg-type]
    )


def config(version: int, camera: str = "front", limit: float = 1.0) -> DeviceConfig:
    zone = Zone(
        id="bay",
        kind=ZoneKind.NO_PARKING,
        polygon=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
        dwell_limit_s=limit,
    )
    return DeviceConfig(
        device_id="cam-01", version=version, cameras=[CameraConfig(id=camera, zones=[zone])]
    )


def frame(ts: float, camera: str = "front", image: Image | None = None) -> Frame:
    img = image if image is not None else np.zeros((120, 160, 3), np.uint8)
    return Frame(camera, img, ts, AT.replace(second=int(ts) % 60), int(ts * 10))


PARKED = [Detection("car", 0.9, Rect(0.3, 0.3, 0.6, 0.6))]


def test_apply_config_takes_effect_before_the_next_frame() -> None:
    pipe = Pipeline(settings(), ScriptedDetector(PARKED))
    assert pipe.config_version == 0
    events = [e for i in range(60) for e in pipe.process(frame(i / 10))]
    assert events == []  # no zones yet
    pipe.apply_config(config(4))
    assert pipe.config_version == 4
    events = [e for i in range(60, 120) for e in pipe.process(frame(i / 10))]
    assert [(e.kind, e.phase, e.zone_id) for e in events] == [
        (EventKind.ILLEGAL_PARKING, Phase.START, "bay")
    ]
    assert events[0].device_id == "cam-01"
    assert events[0].snapshot is not None
    # Where the snapshot's crop sits in the frame: consoles draw the box and zone with it.
    a = events[0].attributes
    car = PARKED[0].box
    assert float(a["snapshot_x1"]) <= car.x1 < car.x2 <= float(a["snapshot_x2"])
    assert float(a["snapshot_y1"]) <= car.y1 < car.y2 <= float(a["snapshot_y2"])


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        (config(5, camera="side"), r"cameras\[0\]\.id"),
        (config(5).model_copy(update={"device_id": "cam-02"}), "device_id"),
        (config(1), "version"),
    ],
)
def test_apply_config_refuses_what_does_not_fit_and_keeps_the_old(
    cfg: DeviceConfig, field: str
) -> None:
    pipe = Pipeline(settings(), ScriptedDetector(PARKED))
    pipe.apply_config(config(2))
    with pytest.raises(ValueError, match=field):
        pipe.apply_config(cfg)
    assert pipe.config_version == 2
    assert pipe.config.cameras[0].id == "front"


def test_apply_config_from_another_thread_is_safe() -> None:
    pipe = Pipeline(settings(), ScriptedDetector(PARKED))
    stop = threading.Event()

    def push() -> None:
        v = 1
        while not stop.is_set():
            pipe.apply_config(config(v, limit=float(v % 3)))
            v += 1

    th = threading.Thread(target=push)
    th.start()
    try:
        for i in range(200):
            pipe.process(frame(i / 10))
    finally:
        stop.set()
        th.join()
    assert pipe.config_version > 1


def test_stats_report_fps_and_a_camera_that_stopped() -> None:
    pipe = Pipeline(settings(camera_down_s=0.2), ScriptedDetector(PARKED))
    for i in range(10):
        pipe.process(frame(i / 10))
    stats = pipe.stats()
    assert stats.frames == 10
    assert stats.fps > 0
    health = {c.camera_id: c.state for c in stats.cameras}
    assert health == {"front": CameraState.OK, "back": CameraState.UNKNOWN}
    time.sleep(0.3)
    assert {c.camera_id: c.state for c in pipe.stats().cameras}["front"] is CameraState.DOWN


def test_unknown_camera_in_a_frame_is_an_error() -> None:
    pipe = Pipeline(settings(), ScriptedDetector([]))
    with pytest.raises(ValueError, match="camera_id"):
        pipe.process(frame(0.0, camera="side"))


def test_motion_gate_skips_the_detector_on_a_still_scene() -> None:
    det = ScriptedDetector(PARKED)
    pipe = Pipeline(settings(), det)
    for i in range(50):  # 5 s of an unchanging image
        pipe.process(frame(i / 10))
    assert det.calls <= 4  # the first frame, then one refresh per keyframe_s (2 s)


def test_merge_keeps_one_box_per_object() -> None:
    a = Detection("car", 0.5, Rect(0.1, 0.1, 0.3, 0.3))
    b = Detection("car", 0.7, Rect(0.11, 0.1, 0.31, 0.3))
    c = Detection("car", 0.6, Rect(0.6, 0.6, 0.8, 0.8))
    assert merge([a, b, c]) == [b, c]


def test_latest_jpeg_blurs_the_face(material: Path) -> None:
    raw = cv2.imread(str(material / "data" / "images" / "grace_hopper.bmp"))
    assert raw is not None
    image: Image = np.asarray(raw, dtype=np.uint8)
    blurrer = BlazeFaceBlurrer()
    faces = blurrer.faces(image)
    assert len(faces) == 1
    face = faces[0]
    pipe = Pipeline(settings(), ScriptedDetector([]), blurrer)
    assert pipe.latest_jpeg() is None
    pipe.process(frame(0.0, image=image))
    data = pipe.latest_jpeg("front")
    assert data is not None
    assert data.startswith(b"\xff\xd8")
    out = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE))
    h, w = out.shape
    orig = cv2.cvtColor(cv2.resize(image, (w, h)), cv2.COLOR_BGR2GRAY)

    x1, y1, x2, y2 = int(face.x1 * w), int(face.y1 * h), int(face.x2 * w), int(face.y2 * h)
    changed = np.abs(out[y1:y2, x1:x2].astype(float) - orig[y1:y2, x1:x2].astype(float))
    assert changed.mean() > 8.0  # the face is pixelated
    corner = np.abs(out[:40, :40].astype(float) - orig[:40, :40].astype(float))
    assert corner.mean() < 4.0  # the rest of the picture is not
    colour = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), np.uint8)
    assert blurrer.faces(colour) == []


class ListSource:
    camera_id = "front"
    is_file = True

    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False

    def frames(self) -> Iterator[Frame]:
        for i in range(self.n):
            yield frame(i / 10)

    def close(self) -> None:
        self.closed = True


def test_run_stops_on_request_and_closes_sources() -> None:
    pipe = Pipeline(settings(), ScriptedDetector(PARKED))
    stop = threading.Event()
    source = ListSource(1000)
    count = 0

    def on_frame(_f: Frame) -> None:
        nonlocal count
        count += 1
        if count == 25:
            stop.set()

    summary = run(pipe, ListSink(), stop, sources=[source], on_frame=on_frame)
    assert summary.frames == 25
    assert source.closed


def test_run_reads_several_cameras() -> None:
    pipe = Pipeline(settings(), ScriptedDetector([]))
    back = ListSource(30)
    back.camera_id = "back"

    class Back(ListSource):
        def frames(self) -> Iterator[Frame]:
            for i in range(self.n):
                yield frame(i / 10, camera="back")

    summary = run(pipe, ListSink(), threading.Event(), sources=[ListSource(20), Back(30)])
    assert summary.frames == 50


def test_missing_face_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"snapshot\.face_model_path"):
        BlazeFaceBlurrer(tmp_path / "face.tflite")
