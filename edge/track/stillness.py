"""Appearance check for stationary tracks: a parked object looks like it did when it stopped.

Detector boxes jitter by several pixels, so box speed alone cannot tell a car creeping into a
bay from a parked one. Each stationary track keeps a small grey patch from the moment it was
found stationary; if that patch can no longer be found where it was, the object has moved: its
stationary time restarts and the patch is renewed.

"Found" is robust to what a street camera does to a still object: the patch is searched within
``search`` of its place (a pole swaying by a few pixels), and compared by normalised
correlation (a light switching on, dusk, a gained night image change brightness and contrast,
not the correlation). A flat patch (a wall, empty road) cannot be correlated: it has moved
only if something with contrast appears in it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect.regions import Rect
from edge.track.tracker import Track

Grey = npt.NDArray[np.uint8]
MIN_PATCH = 4
FLAT_CHANGE = 2.0


@dataclass(frozen=True, slots=True)
class StillnessParams:
    min_correlation: float = 0.8
    """Below this best normalised correlation the object has moved."""
    search: float = 0.01
    """How far (fraction of the frame width) the patch may have shifted: camera shake."""
    min_contrast: float = 3.0
    """A patch with a smaller grey standard deviation is too flat to correlate."""
    every_s: float = 0.25
    """Each track is checked at most this often (creeping beyond the search takes longer)."""


@dataclass(slots=True)
class _Ref:
    box: Rect
    patch: Grey
    std: float
    checked: float


def _pixels(grey: Grey, box: Rect, pad: int = 0) -> tuple[int, int, int, int]:
    h, w = grey.shape
    x1, y1 = max(0, int(box.x1 * w) - pad), max(0, int(box.y1 * h) - pad)
    x2, y2 = min(w, int(np.ceil(box.x2 * w)) + pad), min(h, int(np.ceil(box.y2 * h)) + pad)
    return x1, y1, x2, y2


class StillnessCheck:
    def __init__(self, params: StillnessParams | None = None) -> None:
        self.params = params or StillnessParams()
        self._refs: dict[int, _Ref] = {}

    def _ref(self, grey: Grey, box: Rect, ts: float) -> _Ref | None:
        x1, y1, x2, y2 = _pixels(grey, box)
        if x2 - x1 < MIN_PATCH or y2 - y1 < MIN_PATCH:
            return None
        patch = grey[y1:y2, x1:x2].copy()
        return _Ref(box, patch, float(patch.std()), ts)

    def _still(self, grey: Grey, ref: _Ref) -> bool:
        p, box, patch = self.params, ref.box, ref.patch
        if ref.std < p.min_contrast:
            # A flat reference (empty asphalt under a box the detector keeps finding on a
            # queue of cars) is still as long as nothing with contrast comes into it.
            x1, y1, x2, y2 = _pixels(grey, box)
            return float(grey[y1:y2, x1:x2].std()) < FLAT_CHANGE * p.min_contrast
        pad = max(1, round(p.search * grey.shape[1]))
        x1, y1, x2, y2 = _pixels(grey, box, pad)
        area = grey[y1:y2, x1:x2]
        if area.shape[0] < patch.shape[0] or area.shape[1] < patch.shape[1]:
            return True  # at the frame's edge: cannot search
        if float(area.std()) < p.min_contrast:
            return True
        score = cv2.matchTemplate(area, patch, cv2.TM_CCOEFF_NORMED)
        return float(score.max()) >= p.min_correlation

    def moved(
        self,
        tracks: Sequence[Track],
        grey: Grey,
        *,
        ts: float | None = None,
        settled: bool = True,
    ) -> list[int]:
        """Ids of stationary tracks whose look changed since they stopped (refs renewed).

        While the lighting is not *settled* (a sudden change) nothing is judged. With *ts*,
        each track is checked at most every ``every_s``.
        """
        out: list[int] = []
        live: dict[int, _Ref] = {}
        now = 0.0 if ts is None else ts
        for t in tracks:
            if not t.stationary:
                continue
            ref = self._refs.get(t.id)
            if ref is not None:
                due = settled and (ts is None or now - ref.checked >= self.params.every_s)
                if not due:
                    live[t.id] = ref
                    continue
                ref.checked = now
                if self._still(grey, ref):
                    live[t.id] = ref
                    continue
                out.append(t.id)
            fresh = self._ref(grey, t.box, now)
            if fresh is not None:
                live[t.id] = fresh
        self._refs = live
        return out
