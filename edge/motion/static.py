"""Static foreground from two background models (long-term vs short-term).

A pixel that differs from the long-term background but already belongs to the short-term one
is part of something that arrived and stopped: a left bag, a parked car, a standing person.
Each pixel keeps how long it has been static; connected static areas become ``StaticBlob``s,
matched frame to frame so a blob keeps its id while its outline wobbles. The long-term model
starts from the first frame, which may hold objects that later leave; a blob over background
never confirmed by the scene (``confirm_s``) is such a ghost and is learned away.

Camera shake is taken out first: each frame is aligned to the long-term background by phase
correlation (a whole-frame translation, sub-pixel; a pole swaying by a few pixels), otherwise
every edge in the scene, and the outline of a small bag, flickers between foreground and not.
Lighting is taken out next: each frame is divided by its brightness factor
relative to the long-term background, estimated per region of a coarse grid
(``edge.motion.lighting.gain_map``). A light switching on, a cloud or dusk then leave the
normalised frame as it was, while a new object, smaller than half a grid cell, still differs.
Contrast too: a dark, gained night image spans fewer grey levels, so a bag differs from the
pavement by less. The foreground threshold scales with the background's contrast (its grey
standard deviation against that of a daylight street), down to 40 % of ``threshold``.
While the caller says the lighting is unsettled (a sudden change), static ages are frozen:
judgement pauses, nothing restarts.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera.frame import Image
from edge.detect.regions import Rect
from edge.motion.lighting import gain_map

F32 = npt.NDArray[np.float32]
WARMUP_SAMPLES = 9
DAYLIGHT_STD = 30.0
"""Grey standard deviation of a daylight street scene at this scale: ``threshold`` is for it."""
MIN_THRESHOLD_FRACTION = 0.4


@dataclass(frozen=True, slots=True)
class StaticBlob:
    id: int
    box: Rect
    area: float
    """Fraction of the frame."""
    static_since: float
    """Video time since which most of its pixels have been static."""


@dataclass(frozen=True, slots=True)
class StaticParams:
    scale_width: int = 320
    long_term_s: float = 120.0
    short_term_s: float = 1.5
    threshold: int = 25
    min_area: float = 0.0008
    max_area: float = 0.03
    settle_s: float = 2.0
    confirm_s: float = 1.0
    warmup_s: float = 4.0
    max_shift: float = 0.03
    """Largest camera shake compensated (fraction of the width); more is a moved camera."""


class StaticForeground:
    def __init__(self, params: StaticParams | None = None) -> None:
        self.params = params or StaticParams()
        self._long: F32 | None = None
        self._short: F32 | None = None
        self._age: F32 | None = None
        self._seen: F32 | None = None
        """Seconds each long-term background pixel has been seen to match the frame."""
        self._last_ts: float | None = None
        self._start: float | None = None
        self._samples: list[F32] = []
        self._sample_ts = 0.0
        self._blobs: list[StaticBlob] = []
        self._next_id = 1
        self._window: F32 | None = None
        self.shift = (0.0, 0.0)
        """The last frame's estimated shake, in pixels of the reduced frame."""

    def _grey(self, image: Image) -> F32:
        h, w = image.shape[:2]
        sw = min(self.params.scale_width, w)
        small = cv2.resize(image, (sw, max(1, sw * h // w)), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (3, 3), 0)
        return grey.astype(np.float32)

    def update(self, image: Image, ts: float, *, settled: bool = True) -> list[StaticBlob]:
        """Advance to *ts*; with ``settled=False`` (a sudden light change) ages are frozen."""
        p = self.params
        grey = self._grey(image)
        if self._long is not None:
            grey = self._align(grey, self._long)
            grey = grey / gain_map(grey, self._long)
        if self._long is None or self._short is None or self._age is None or self._seen is None:
            if self._warmup(grey, ts):
                return []
            assert self._long is not None  # noqa: S101 - set by _warmup
            self._short = grey.copy()
            self._age = np.zeros_like(grey)
            # Where the last warm-up frame agrees with the median, the background is confirmed.
            agrees = np.abs(grey - self._long) <= p.threshold
            self._seen = np.where(agrees, p.confirm_s, 0.0).astype(np.float32)
            self._last_ts = ts
            return []
        dt = max(1e-3, ts - (self._last_ts if self._last_ts is not None else ts))
        self._last_ts = ts
        contrast = min(1.0, max(MIN_THRESHOLD_FRACTION, float(self._long.std()) / DAYLIGHT_STD))
        threshold = p.threshold * contrast
        fg_long = np.abs(grey - self._long) > threshold
        fg_short = np.abs(grey - self._short) > threshold
        static = fg_long & ~fg_short
        self._seen = np.where(fg_long, self._seen, np.minimum(self._seen + dt, 3600.0))
        if settled:
            self._age = np.where(static, self._age + dt, np.maximum(self._age - 2.0 * dt, 0.0))
        # The short-term model follows quickly; the long-term one learns only where nothing
        # is in front of it, plus a very slow global drift for light changes.
        cv2.accumulateWeighted(grey, self._short, min(1.0, dt / p.short_term_s))
        a_long = min(1.0, dt / p.long_term_s)
        learn = (~fg_long).astype(np.uint8)
        cv2.accumulateWeighted(grey, self._long, min(1.0, a_long * 20.0), mask=learn)
        cv2.accumulateWeighted(grey, self._long, a_long)
        if settled:
            self._blobs = self._match(self._find(ts, grey), ts)
        return self._blobs

    def _align(self, grey: F32, reference: F32) -> F32:
        """*grey* moved back onto *reference* if the camera shook (a small translation)."""
        h, w = grey.shape
        if self._window is None or self._window.shape != grey.shape:
            self._window = np.asarray(cv2.createHanningWindow((w, h), cv2.CV_32F))
        (dx, dy), response = cv2.phaseCorrelate(reference, grey, self._window)
        limit = self.params.max_shift * w
        if response < 0.05 or abs(dx) > limit or abs(dy) > limit:  # noqa: PLR2004
            self.shift = (0.0, 0.0)
            return grey
        self.shift = (float(dx), float(dy))
        if abs(dx) < 0.25 and abs(dy) < 0.25:  # noqa: PLR2004 - a quarter pixel: leave it
            return grey
        m = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], dtype=np.float32)
        out = cv2.warpAffine(grey, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(out, dtype=np.float32)

    def _warmup(self, grey: F32, ts: float) -> bool:
        """Collect frames for ``warmup_s``; their median becomes the long-term background.

        A median over seconds removes what was only passing through the first frame (cars on
        a road), which would otherwise stay in the background and leave ghosts behind.
        """
        p = self.params
        if self._start is None:
            self._start = ts
        if not self._samples or ts - self._sample_ts >= p.warmup_s / WARMUP_SAMPLES:
            self._samples.append(grey)
            self._sample_ts = ts
        if ts - self._start < p.warmup_s:
            return True
        self._long = np.median(np.stack(self._samples), axis=0).astype(np.float32)
        self._samples.clear()
        return False

    def _is_ghost(self, blob: npt.NDArray[np.bool_]) -> bool:
        """Is the long-term background under *blob* unconfirmed by the scene? Then it is a ghost.

        That happens when the background was learned with something in front (a car that has
        since left).
        """
        assert self._seen is not None  # noqa: S101
        return bool(np.median(self._seen[blob]) < self.params.confirm_s)

    def _find(self, ts: float, grey: F32) -> list[tuple[Rect, float, float]]:
        p = self.params
        assert self._age is not None  # noqa: S101 - set by update before this is called
        raw = (self._age >= p.settle_s).astype(np.uint8)
        mask = cv2.morphologyEx(raw, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        h, w = mask.shape
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        found: list[tuple[Rect, float, float]] = []
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            frac = area / (w * h)
            if not p.min_area <= frac <= p.max_area:
                continue
            blob = labels == i
            if self._is_ghost(blob):
                # Something that was in the first frames has left: learn the empty scene.
                assert self._long is not None  # noqa: S101
                self._long[blob] = grey[blob]
                self._age[blob] = 0.0
                assert self._seen is not None  # noqa: S101
                self._seen[blob] = 0.0
                continue
            ages = self._age[blob]
            since = ts - float(np.median(ages)) if ages.size else ts
            found.append((Rect(x / w, y / h, (x + bw) / w, (y + bh) / h), frac, since))
        return found

    def _match(self, found: list[tuple[Rect, float, float]], ts: float) -> list[StaticBlob]:
        out: list[StaticBlob] = []
        taken: set[int] = set()
        for rect, frac, since in found:
            best = max(
                (b for b in self._blobs if b.id not in taken),
                key=lambda b: b.box.iou(rect),
                default=None,
            )
            if best is not None and best.box.iou(rect) >= 0.3:  # noqa: PLR2004
                taken.add(best.id)
                out.append(StaticBlob(best.id, rect, frac, min(best.static_since, since)))
            else:
                out.append(StaticBlob(self._next_id, rect, frac, since))
                self._next_id += 1
        del ts
        return out

    @property
    def blobs(self) -> list[StaticBlob]:
        return list(self._blobs)
