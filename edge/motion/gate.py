"""Motion gating: has a region changed since the detector last looked at it?

Each region keeps the small grey frame from its last detector run; comparing against that
(not just the previous frame) also catches slow movers, whose change per frame is tiny.
"""

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera.frame import Image
from edge.detect.regions import Rect, Region

GATE_WIDTH = 160
DETAIL_WIDTH = 320
Grey = npt.NDArray[np.uint8]


class MotionGate:
    def __init__(self, threshold: int = 18, min_area: float = 0.0004) -> None:
        self.threshold = threshold
        self.min_area = min_area
        self._grey: Grey | None = None
        self._detail: Grey | None = None
        self._refs: dict[Region, Grey] = {}

    def observe(self, image: Image) -> None:
        """Take the current frame (reduced to a small blurred grey copy)."""
        h, w = image.shape[:2]
        size = (DETAIL_WIDTH, max(1, DETAIL_WIDTH * h // w))
        detail = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(detail, cv2.COLOR_BGR2GRAY), (3, 3), 0)
        small_size = (GATE_WIDTH, max(1, GATE_WIDTH * h // w))
        small = cv2.resize(grey, small_size, interpolation=cv2.INTER_AREA)
        self._detail = np.asarray(grey, dtype=np.uint8)
        self._grey = np.asarray(cv2.GaussianBlur(small, (5, 5), 0), dtype=np.uint8)

    @property
    def detail(self) -> Grey | None:
        """The current frame in grey at ``DETAIL_WIDTH`` (for the stillness check)."""
        return self._detail

    def _slice(self, grey: Grey, rect: Rect) -> Grey:
        h, w = grey.shape
        x1, y1 = int(rect.x1 * w), int(rect.y1 * h)
        x2, y2 = max(x1 + 1, int(np.ceil(rect.x2 * w))), max(y1 + 1, int(np.ceil(rect.y2 * h)))
        return grey[y1:y2, x1:x2]

    def changed(self, region: Region) -> bool:
        """More than ``min_area`` (fraction of the frame) differs from the region's reference."""
        grey, ref = self._grey, self._refs.get(region)
        if grey is None or ref is None or ref.shape != grey.shape:
            return True
        diff = cv2.absdiff(self._slice(grey, region.rect), self._slice(ref, region.rect))
        moved = int(np.count_nonzero(diff > self.threshold))
        return moved > 0 and moved >= self.min_area * grey.size

    def mark(self, region: Region) -> None:
        """The detector has just run on *region*: the current frame is its new reference."""
        if self._grey is not None:
            self._refs[region] = self._grey

    def reset(self) -> None:
        self._refs.clear()
