"""``cityops edge replay --annotate``: the debug view of every frame, written as a video.

Optionally a few chosen frames are also put side by side in one small PNG (``--stills``), the
way docs/edge-pipeline.md shows them.
"""

from pathlib import Path

import cv2
import numpy as np

from edge.camera.frame import Image
from edge.debug.overlay import Annotator, FrameView
from edge.privacy.blurrer import FaceBlurrer

STILL_WIDTH = 320


class AnnotatedVideo:
    """Observer for ``Pipeline.observer``: annotates and writes each frame of one camera."""

    def __init__(
        self,
        path: Path,
        fps: float,
        blurrer: FaceBlurrer | None,
        *,
        stills: tuple[int, ...] = (),
        stills_path: Path | None = None,
    ) -> None:
        self.path = path
        self.fps = fps
        self.annotator = Annotator(blurrer)
        self.stills = stills
        self.stills_path = stills_path
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._picked: dict[int, Image] = {}

    def observe(self, view: FrameView) -> None:
        self.annotator.observe(view)
        image = self.annotator.render(view.frame.camera_id)
        if image is None:  # pragma: no cover - observe() just stored the view
            return
        if self._writer is None:
            h, w = image.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise ValueError(f"--annotate: cannot write a video to {self.path}")
        self._writer.write(image)
        if self.frames in self.stills:
            h, w = image.shape[:2]
            size = (STILL_WIDTH, round(h * STILL_WIDTH / w))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            self._picked[self.frames] = np.asarray(small, dtype=np.uint8)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the video; write the stills PNG (if asked) and return its path."""
        if self._writer is not None:
            self._writer.release()
        if not self.stills_path or not self._picked:
            return None
        row = [self._picked[i] for i in sorted(self._picked)]
        cols = min(len(row), 2)
        while len(row) % cols:
            row.append(np.zeros_like(row[0]))
        grid = np.vstack([np.hstack(row[i : i + cols]) for i in range(0, len(row), cols)])
        if not cv2.imwrite(str(self.stills_path), grid, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise ValueError(f"--stills: cannot write {self.stills_path}")
        return self.stills_path
