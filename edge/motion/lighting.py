"""Lighting: how the scene's brightness differs from a reference, and sudden changes of it.

A light switching on, a cloud or dusk changes every pixel by a factor, which a plain grey
difference reads as "everything moved". ``gain_map`` estimates that factor per region (the
median of frame / reference over a coarse grid, so an object covering less than half a cell
does not move it) and ``LightingMonitor`` tells a sudden global change from a slow one, so the
stages that judge stillness can pause for a moment instead of restarting their clocks.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
GRID = (4, 3)
"""Cells across and down: coarse enough that a person or a bag is less than half a cell."""
MIN_GAIN = 0.2
MAX_GAIN = 5.0


def gain_map(grey: F32, reference: F32, grid: tuple[int, int] = GRID) -> F32:
    """Per-pixel brightness factor of *grey* relative to *reference*, smooth between cells."""
    h, w = grey.shape
    gx, gy = grid
    ch, cw = h // gy, w // gx
    ratio = (grey[: ch * gy, : cw * gx] + 1.0) / (reference[: ch * gy, : cw * gx] + 1.0)
    cells = ratio.reshape(gy, ch, gx, cw).transpose(0, 2, 1, 3).reshape(gy, gx, ch * cw)
    med = np.clip(np.median(cells, axis=2), MIN_GAIN, MAX_GAIN).astype(np.float32)
    return np.asarray(cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class LightingParams:
    sudden: float = 0.12
    """A change of the scene's brightness by more than this fraction within ``window_s``..."""
    window_s: float = 0.5
    pause_s: float = 2.0
    """...pauses stillness judgement for this long after the change settles."""


class LightingMonitor:
    """Watches the median brightness of the scene; ``settled`` is False around sudden changes."""

    def __init__(self, params: LightingParams | None = None) -> None:
        self.params = params or LightingParams()
        self._level: float | None = None
        self._ts: float | None = None
        self._paused_until = float("-inf")
        self.changes = 0

    def observe(self, grey: npt.NDArray[np.uint8], ts: float) -> None:
        p = self.params
        level = float(np.median(grey[::4, ::4])) + 1.0  # every 16th pixel is plenty
        if self._level is None or self._ts is None:
            self._level, self._ts = level, ts
            return
        dt = max(0.0, ts - self._ts)
        self._ts = ts
        ratio = level / self._level
        if abs(ratio - 1.0) > p.sudden:
            if ts >= self._paused_until:
                self.changes += 1
            self._paused_until = ts + p.pause_s
        # The reference level follows with the window's time constant: a slow dusk never
        # differs from it by much, a switched light does at once.
        a = min(1.0, dt / p.window_s)
        self._level += a * (level - self._level)

    def settled(self, ts: float) -> bool:
        return ts >= self._paused_until
