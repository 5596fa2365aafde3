"""Appearance check for stationary tracks: a parked object looks like it did when it stopped.

Detector boxes jitter by several pixels, so box speed alone cannot tell a car creeping into a
bay from a parked one. Each stationary track keeps a small grey patch from the moment it was
found stationary; if the patch under its box later differs (mean absolute difference after
removing the mean, so a passing cloud does not count), the object has moved: its stationary
time restarts and the patch is renewed.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edge.detect.regions import Rect
from edge.track.tracker import Track

Grey = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
MIN_PATCH = 4


def _patch(grey: Grey, box: Rect) -> F32 | None:
    h, w = grey.shape
    x1, y1 = int(box.x1 * w), int(box.y1 * h)
    x2, y2 = int(np.ceil(box.x2 * w)), int(np.ceil(box.y2 * h))
    if x2 - x1 < MIN_PATCH or y2 - y1 < MIN_PATCH:
        return None
    p = grey[y1:y2, x1:x2].astype(np.float32)
    out: F32 = p - np.float32(p.mean())
    return out


class StillnessCheck:
    def __init__(self, threshold: float = 4.0) -> None:
        self.threshold = threshold
        self._refs: dict[int, tuple[Rect, F32]] = {}

    def moved(self, tracks: Sequence[Track], grey: Grey) -> list[int]:
        """Ids of stationary tracks whose look changed since they stopped (refs renewed)."""
        out: list[int] = []
        live: dict[int, tuple[Rect, F32]] = {}
        for t in tracks:
            if not t.stationary:
                continue
            ref = self._refs.get(t.id)
            if ref is None:
                patch = _patch(grey, t.box)
                if patch is not None:
                    live[t.id] = (t.box, patch)
                continue
            now = _patch(grey, ref[0])
            if now is None or now.shape != ref[1].shape:
                continue
            if float(np.abs(now - ref[1]).mean()) > self.threshold:
                out.append(t.id)
                patch = _patch(grey, t.box)
                if patch is not None:
                    live[t.id] = (t.box, patch)
            else:
                live[t.id] = ref
        self._refs = live
        return out
