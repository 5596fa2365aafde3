"""``Frame``: one captured image and when it was taken."""

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
"""An OpenCV BGR image, shape (height, width, 3)."""


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """A captured image. ``ts`` is seconds on the source's own clock (video time for files).

    ``captured_at`` is the wall time events are stamped with: the clock for live sources,
    ``start_time + video time`` for file replays (deterministic).
    """

    camera_id: str
    image: Image = field(repr=False)
    ts: float
    captured_at: datetime
    index: int = 0

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
