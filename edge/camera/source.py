"""Frame sources behind one protocol: OpenCV captures and the Pi camera (picamera2)."""

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge.camera.frame import Frame
from edge.settings import CameraSettings
from shared.clock import utcnow

logger = logging.getLogger(__name__)
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0


class FrameSource(Protocol):
    camera_id: str
    is_file: bool
    """Files end; live sources reconnect, so the loop reads them in a thread it can stop."""

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (file) or fails; never raises on end of file."""

    def close(self) -> None: ...


class SourceError(RuntimeError):
    """A source could not be opened; the message names the camera and the source."""


def _capture_arg(source: str) -> str | int:
    return int(source) if source.isdigit() else source


class OpenCvSource:
    """File, RTSP/HTTP URL, USB index or GStreamer pipeline through ``cv2.VideoCapture``.

    Files give video time (``CAP_PROP_POS_MSEC``) as ``ts`` and ``start_time + ts`` as
    ``captured_at``; with ``realtime`` they are paced at their own rate. Live sources are
    stamped with the clock.
    """

    def __init__(
        self,
        camera_id: str,
        source: str,
        *,
        realtime: bool = False,
        loop: bool = False,
        start_time: datetime | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.source = source
        self.is_file = Path(source).is_file()
        self.realtime = realtime
        self.loop = loop and self.is_file
        # Realtime replays without a base start now; fast replays must be given one.
        self.start_time = start_time if start_time is not None else utcnow()
        self._api = cv2.CAP_GSTREAMER if "appsink" in source else cv2.CAP_ANY
        self._closed = threading.Event()
        self._cap = cv2.VideoCapture(_capture_arg(source), self._api)
        if not self._cap.isOpened():
            # The source may be a URL with credentials: name the camera, not the URL.
            where = "its stream URL" if "://" in source else repr(source)
            raise SourceError(f"camera {camera_id!r}: cannot open {where}")
        self._reading = False
        self._delay = RECONNECT_MIN_S
        if not self.is_file:
            for prop, value in (
                (cv2.CAP_PROP_FRAME_WIDTH, width),
                (cv2.CAP_PROP_FRAME_HEIGHT, height),
                (cv2.CAP_PROP_FPS, fps),
            ):
                if value is not None:
                    self._cap.set(prop, float(value))
        rate = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = rate if 0.0 < rate < 1000.0 else 25.0  # noqa: PLR2004 - sane-rate guard

    @property
    def frame_count(self) -> int:
        """Frames in a file as the container states it (0 if unknown or live)."""
        return int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.is_file else 0

    def frames(self) -> Iterator[Frame]:
        self._reading = True
        try:
            yield from self._frames()
        finally:
            self._reading = False
            if self._closed.is_set():
                self._cap.release()

    def _frames(self) -> Iterator[Frame]:
        index = 0
        in_loop = 0  # frames decoded since the file (re)started
        offset = 0.0  # video time already played in earlier loops
        t0 = time.monotonic()
        while True:
            if self._closed.is_set():
                return
            ok, image = self._cap.read()
            if not ok or image is None:
                if self.loop and in_loop > 0:
                    offset += in_loop / self.fps
                    in_loop = 0
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                if not self.is_file and self._reconnect():
                    continue
                return
            if self.is_file:
                # Video time from the frame number: deterministic, unlike decoder timestamps.
                ts = offset + in_loop / self.fps
                if self.realtime:
                    delay = ts - (time.monotonic() - t0)
                    if delay > 0:
                        time.sleep(delay)
                captured = self.start_time + timedelta(seconds=ts)
            else:
                ts = time.monotonic() - t0
                captured = utcnow()
                self._delay = RECONNECT_MIN_S
            yield Frame(self.camera_id, np.ascontiguousarray(image), ts, captured, index)
            index += 1
            in_loop += 1

    def _reconnect(self) -> bool:
        """A live stream dropped: reopen it with backoff until it answers or we are closed.

        The delay grows until a frame is read again, so a stream that opens but gives
        nothing is not hammered.
        """
        while not self._closed.is_set():
            delay = self._delay
            self._delay = min(delay * 2, RECONNECT_MAX_S)
            logger.warning("camera %s: stream lost, reconnecting in %.1f s", self.camera_id, delay)
            if self._closed.wait(delay):
                return False
            self._cap.release()
            self._cap = cv2.VideoCapture(_capture_arg(self.source), self._api)
            if self._cap.isOpened():
                return True
        return False

    def close(self) -> None:
        """Stop: ``frames()`` returns at its next step (safe from another thread)."""
        self._closed.set()
        if not self._reading:  # else the reading thread releases it on its way out
            self._cap.release()


class Picamera2Source:
    """The Raspberry Pi camera through ``picamera2`` (installed from apt, imported lazily)."""

    def __init__(
        self, camera_id: str, *, width: int | None, height: int | None, fps: float | None
    ) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                f"camera {camera_id!r}: kind 'picamera2' needs python3-picamera2 (apt) on a Pi"
            ) from exc
        self.camera_id = camera_id
        self.is_file = False
        self._cam: Any = Picamera2()
        main = {"size": (width or 1280, height or 720), "format": "RGB888"}
        controls = {"FrameRate": fps} if fps else {}
        self._cam.configure(self._cam.create_video_configuration(main=main, controls=controls))
        self._cam.start()

    def frames(self) -> Iterator[Frame]:
        t0 = time.monotonic()
        index = 0
        while True:
            # RGB888 in picamera2 is BGR byte order, which is what OpenCV expects.
            image = np.ascontiguousarray(self._cam.capture_array("main")[:, :, :3])
            yield Frame(self.camera_id, image, time.monotonic() - t0, utcnow(), index)
            index += 1

    def close(self) -> None:
        self._cam.stop()
        self._cam.close()


def open_source(
    cam: CameraSettings,
    *,
    base_dir: Path | None = None,
    start_time: datetime | None = None,
    realtime: bool | None = None,
) -> FrameSource:
    """Open the source of *cam*; ``realtime`` overrides the camera's own replay setting."""
    if cam.kind == "picamera2":
        return Picamera2Source(cam.id, width=cam.width, height=cam.height, fps=cam.fps)
    return OpenCvSource(
        cam.id,
        cam.resolved_source(base_dir),
        realtime=(cam.replay == "realtime") if realtime is None else realtime,
        loop=cam.loop,
        start_time=start_time,
        width=cam.width,
        height=cam.height,
        fps=cam.fps,
    )
