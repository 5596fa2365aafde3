"""Frame sources on the real clips: video-time stamps, loop, pacing, errors."""

import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest

from edge.camera.source import OpenCvSource, SourceError, open_source
from edge.settings import CameraSettings

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


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
