"""Frame sources on the real clips: video-time stamps, loop, pacing, errors."""

import shutil
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from pathlib import Path

import pytest

from edge.camera.frame import Image
from edge.camera.source import OpenCvSource, SourceError, open_source
from edge.detect.base import Detection
from edge.detect.regions import Region
from edge.pipeline import Pipeline, run
from edge.settings import CameraSettings, EdgeSettings
from edge.sink import ListSink

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class ScriptedDetector:
    name = "scripted"
    version = "1"

    def __init__(self, detections: list[Detection]) -> None:
        self.detections = detections

    def detect(self, image: Image, region: Region | None = None) -> list[Detection]:
        return list(self.detections)


def test_file_frames_carry_video_time(material: Path) -> None:
    clip = material / "data" / "parking" / "parkinglot_static_cam.mp4"  # 15 fps, 203 frames
    source = OpenCvSource("lot", str(clip), start_time=START)
    frames = list(source.frames())
    source.close()
    assert len(frames) == 203
    assert frames[15].ts == pytest.approx(1.0, abs=1e-3)  # the container says 15.0003 fps
    assert frames[15].captured_at - START == timedelta(seconds=frames[15].ts)
    assert frames[-1].width == 856
    assert frames[-1].height == 480


def test_loop_continues_video_time(material: Path) -> None:
    clip = material / "data" / "pedestrians" / "towncentre_segA.mp4"  # 25 fps, 96 frames
    source = OpenCvSource("street", str(clip), loop=True, start_time=START)
    frames = list(islice(source.frames(), 100))
    source.close()
    assert [f.index for f in frames] == list(range(100))
    assert frames[96].ts == pytest.approx(96 / 25, abs=1e-3)  # no jump back to 0 after the loop
    assert frames[99].ts > frames[95].ts


def test_realtime_replay_is_paced(material: Path) -> None:
    clip = material / "data" / "pedestrians" / "towncentre_segA.mp4"
    source = OpenCvSource("street", str(clip), realtime=True)
    t0 = time.monotonic()
    frames = list(islice(source.frames(), 13))  # 12 frame intervals at 25 fps = 0.48 s
    source.close()
    assert time.monotonic() - t0 >= 0.45
    assert frames[0].captured_at <= datetime.now(UTC)


def test_open_source_resolves_material_and_names_the_camera(tmp_path: Path) -> None:
    cam = CameraSettings(id="front", source="missing.mp4")
    with pytest.raises(SourceError, match="front"):
        open_source(cam, base_dir=tmp_path)


def test_picamera2_needs_the_pi_package() -> None:
    cam = CameraSettings(id="pi", source="-", kind="picamera2")
    with pytest.raises(SourceError, match="picamera2"):
        open_source(cam)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


def serve(folder: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_live_stream_reconnects_and_stops_on_request(material: Path, tmp_path: Path) -> None:
    # An AVI streams over plain HTTP (an MP4 needs range requests for its index).
    shutil.copy(material / "data" / "abandoned" / "aboda_video4.avi", tmp_path / "s.avi")
    server = serve(tmp_path)
    url = f"http://127.0.0.1:{server.server_address[1]}/s.avi"
    source = OpenCvSource("street", url)
    assert not source.is_file
    # The 1169-frame "stream" ends; the source reconnects and keeps delivering.
    frames = list(islice(source.frames(), 1200))
    assert len(frames) == 1200
    assert frames[-1].captured_at <= datetime.now(UTC)
    # Now the camera goes away for good: the loop must still stop when asked.
    source2 = OpenCvSource("street", url)
    server.shutdown()
    server.server_close()
    stop = threading.Event()
    pipe = Pipeline(
        EdgeSettings(device_id="cam-01", cameras=[CameraSettings(id="street", source=url)]),
        ScriptedDetector([]),
    )
    done = threading.Event()

    def drive() -> None:
        run(pipe, ListSink(), stop, sources=[source2])
        done.set()

    worker = threading.Thread(target=drive, daemon=True)
    worker.start()
    time.sleep(1.0)
    stop.set()
    worker.join(timeout=5.0)
    assert done.is_set()
    source.close()
