"""Snapshot JPEGs: a crop around the event with context, faces blurred, bounded in bytes."""

from collections.abc import Sequence

import cv2
import numpy as np

from edge.camera.frame import Image
from edge.detect.regions import Rect
from edge.privacy.blurrer import FaceBlurrer
from shared.limits import MAX_SNAPSHOT_BYTES

MIN_CROP = 0.25
"""A crop covers at least this fraction of each frame side, so the place is recognisable."""


def crop_rect(box: Rect, context: float = 1.0) -> Rect:
    """*box* grown by *context* × its size on each side, at least ``MIN_CROP`` of the frame."""
    r = box.expanded(context)
    cx, cy = r.center
    w, h = max(r.width, MIN_CROP), max(r.height, MIN_CROP)
    return Rect(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2).clipped()


def encode_jpeg(
    image: Image,
    *,
    max_side: int = 480,
    quality: int = 80,
    max_bytes: int = MAX_SNAPSHOT_BYTES,
) -> tuple[bytes, int, int]:
    """JPEG of *image* scaled to at most *max_side*, shrunk further until under *max_bytes*.

    Returns the bytes and the encoded width and height.
    """
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    while True:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = image if scale == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("snapshot: JPEG encoding failed")
        data = bytes(buf.tobytes())
        if len(data) <= max_bytes or (quality <= 30 and max(size) <= 64):  # noqa: PLR2004
            return data, size[0], size[1]
        quality = max(30, quality - 15)
        scale *= 0.75


def snapshot(
    image: Image,
    box: Rect | None,
    blurrer: FaceBlurrer | None,
    *,
    people: Sequence[Rect] = (),
    max_side: int = 480,
    quality: int = 80,
) -> tuple[bytes, int, int]:
    """Blurred, cropped, bounded JPEG around *box* (whole frame if ``None``)."""
    h, w = image.shape[:2]
    r = crop_rect(box) if box is not None else Rect(0.0, 0.0, 1.0, 1.0)
    x1, y1 = int(r.x1 * w), int(r.y1 * h)
    x2, y2 = max(x1 + 1, int(r.x2 * w)), max(y1 + 1, int(r.y2 * h))
    crop = np.ascontiguousarray(image[y1:y2, x1:x2])
    if blurrer is not None:
        local = [_to_crop(p, r) for p in people if p.overlaps(r)]
        crop = blurrer.blur(crop, local)
    return encode_jpeg(crop, max_side=max_side, quality=quality)


def _to_crop(box: Rect, crop: Rect) -> Rect:
    cw, ch = crop.width or 1.0, crop.height or 1.0
    return Rect(
        (box.x1 - crop.x1) / cw,
        (box.y1 - crop.y1) / ch,
        (box.x2 - crop.x1) / cw,
        (box.y2 - crop.y1) / ch,
    ).clipped()
