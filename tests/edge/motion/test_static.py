"""Static foreground on synthetic frames: a left object is found, passers-by and ghosts not."""

import numpy as np

from edge.camera.frame import Image
from edge.detect.regions import Rect
from edge.motion.static import StaticForeground, StaticParams

FPS = 10
RNG = np.random.default_rng(7)
BACKGROUND = RNG.integers(90, 140, (240, 320, 3), dtype=np.uint8)


def scene(ts: float, *, bag: bool, walker: bool, ghost: bool = False) -> Image:
    img = BACKGROUND.copy()
    if ghost and ts < 0.5:
        img[20:60, 20:60] = 10  # in the first frames only, then gone
    if bag:
        img[150:180, 200:225] = 20
    if walker:
        x = int(ts * 40) % 300
        img[60:120, x : x + 20] = 230
    noise = RNG.integers(-3, 4, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def test_static_foreground_finds_the_left_bag_only() -> None:
    sf = StaticForeground(StaticParams(scale_width=320, settle_s=1.0, warmup_s=2.0))
    blobs = []
    for i in range(12 * FPS):
        ts = i / FPS
        blobs = sf.update(scene(ts, bag=ts >= 4.0, walker=True, ghost=True), ts)
    assert len(blobs) == 1
    blob = blobs[0]
    assert blob.box.iou(Rect(200 / 320, 150 / 240, 225 / 320, 180 / 240)) > 0.5
    assert 4.0 <= blob.static_since <= 6.0


def test_static_foreground_blob_keeps_its_id() -> None:
    sf = StaticForeground(StaticParams(settle_s=1.0, warmup_s=1.0))
    ids = set()
    for i in range(10 * FPS):
        ts = i / FPS
        for b in sf.update(scene(ts, bag=ts >= 2.0, walker=False), ts):
            ids.add(b.id)
    assert len(ids) == 1
