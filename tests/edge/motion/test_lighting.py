"""Lighting: sudden changes pause judgement; the static foreground ignores light and shake."""

import cv2
import numpy as np
import pytest

from edge.camera.frame import Image
from edge.motion.lighting import LightingMonitor, gain_map
from edge.motion.static import StaticForeground, StaticParams

FPS = 10
RNG = np.random.default_rng(11)
BACKGROUND = cv2.GaussianBlur(RNG.integers(60, 190, (240, 320, 3), dtype=np.uint8), (5, 5), 0)


def test_lighting_monitor_pauses_after_a_step_not_during_dusk() -> None:
    monitor = LightingMonitor()
    grey = np.full((60, 80), 120, np.uint8)
    paused = []
    for i in range(200):
        ts = i / FPS
        level = 120 * (1.0 - 0.45 * min(1.0, ts / 10.0))  # dusk over 10 s
        if ts >= 15.0:
            level *= 1.35  # then a light switches on
        monitor.observe((grey * (level / 120)).astype(np.uint8), ts)
        paused.append(not monitor.settled(ts))
    assert not any(paused[:150])  # dusk: never paused
    assert any(paused[150:175])  # the step pauses judgement...
    assert not paused[-1]  # ...for a moment
    assert monitor.changes == 1


def test_gain_map_reads_a_regional_change_not_a_small_object() -> None:
    ref = BACKGROUND[:, :, 0].astype(np.float32)
    frame = ref.copy()
    frame[:, 160:] *= 1.5  # the right half lit
    frame[100:120, 40:60] = 10  # a small dark object on the left
    g = gain_map(frame, ref)
    assert abs(float(np.median(g[:, :100])) - 1.0) < 0.05
    assert abs(float(np.median(g[:, 240:])) - 1.5) < 0.05


def scene(ts: float, *, bag: bool, gain: float = 1.0, shake: int = 0) -> Image:
    img = BACKGROUND.copy()
    if bag:
        img[150:180, 200:225] = 20
    if shake:
        dx, dy = (int(v) for v in RNG.integers(-shake, shake + 1, 2))
        img = np.roll(np.roll(img, dy, axis=0), dx, axis=1)
    return np.asarray(cv2.convertScaleAbs(img, alpha=gain), dtype=np.uint8)


@pytest.mark.parametrize(("gain", "shake"), [(1.35, 0), (0.6, 0), (1.0, 4)])
def test_static_foreground_keeps_the_bag_through_light_and_shake(gain: float, shake: int) -> None:
    sf = StaticForeground(StaticParams(settle_s=1.0, warmup_s=2.0))
    monitor = LightingMonitor()
    blobs = []
    for i in range(14 * FPS):
        ts = i / FPS
        img = scene(ts, bag=ts >= 3.0, gain=gain if ts >= 8.0 else 1.0, shake=shake)
        grey = np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        monitor.observe(grey, ts)
        blobs = sf.update(img, ts, settled=monitor.settled(ts))
    assert len(blobs) == 1, blobs
    assert 3.0 <= blobs[0].static_since <= 5.0  # its stay kept through the change
