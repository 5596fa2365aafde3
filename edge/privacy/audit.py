"""Privacy audit: an independent face detector counts faces in what leaves the device.

The device blurs with BlazeFace "back" (plus head regions); the auditor is a different network,
BlazeFace "full range" (192×192 input, one 48×48 anchor grid, trained for faces up to ~5 m), so
the device model's blind spots are not taken for proof. OpenCV's Haar cascades, the obvious
choice, are gone from OpenCV 5 (no ``CascadeClassifier``, ``cv2.data.haarcascades`` is empty),
and YuNet's weights are in no package the project can install; ``cv2.FaceDetectorYN`` can take
them where they are available. CCTV faces are small, so the auditor looks at the image enlarged
to at least ``AUDIT_SIDE`` px, in overlapping tiles, each of them as large as the model sees it.

``AuditingBlurrer`` wraps the device's blurrer and writes, per image, the faces found before
and after blurring (counts only, never an image) to a JSON-lines file
(``snapshot.privacy_audit``); the demo and the footage tests read those counts and, separately,
run the auditor over every snapshot that actually left.
"""

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cityops.paths import audit_model_path
from edge.camera.frame import Image
from edge.detect.regions import Rect
from edge.privacy.blazeface import FULL_RANGE, BlazeFaceModel
from edge.privacy.blurrer import FaceBlurrer

FLAT_STD = 3.0
"""Grey-level spread of a 3×3 neighbourhood under which a pixel is flat (inside a block)."""
PIXELATED = 0.35
"""A face box with at least this share of flat pixels is pixelated, not readable. Measured on
the provided footage: pixelated heads 0.41-0.68, unblurred faces and heads 0.00-0.21."""
AUDIT_SIDE = 960
TILE = 320
"""Tile side in the enlarged image; neighbouring tiles overlap by a quarter."""


class FaceAuditor:
    """Counts faces with BlazeFace full range over overlapping tiles (thread-safe)."""

    def __init__(self, model_path: Path | None = None, min_score: float = 0.5) -> None:
        path = model_path or audit_model_path()
        if path is None:
            raise ValueError(
                "privacy audit: no auditor model (face_detection_full_range.tflite); "
                "run `cityops models fetch`"
            )
        self._model = BlazeFaceModel(path, FULL_RANGE, min_score)
        self._lock = threading.Lock()

    def faces(self, image: Image, scale_to: tuple[int, int] | None = None) -> list[Rect]:
        """Faces in *image* (first resized to *scale_to* = (w, h), as the snapshot is)."""
        if scale_to is not None:
            image = np.asarray(cv2.resize(image, scale_to, interpolation=cv2.INTER_AREA), np.uint8)
        h, w = image.shape[:2]
        up = max(1.0, AUDIT_SIDE / max(h, w))
        big = np.asarray(
            cv2.resize(image, (round(w * up), round(h * up)), interpolation=cv2.INTER_CUBIC),
            np.uint8,
        )
        bh, bw = big.shape[:2]
        found: list[Rect] = []
        with self._lock:
            for x0, y0, x1, y1 in _tiles(bw, bh):
                for f in self._model.faces(big[y0:y1, x0:x1]):
                    tw, th = x1 - x0, y1 - y0
                    found.append(
                        Rect(
                            (x0 + f.x1 * tw) / bw,
                            (y0 + f.y1 * th) / bh,
                            (x0 + f.x2 * tw) / bw,
                            (y0 + f.y2 * th) / bh,
                        )
                    )
            found.extend(self._model.faces(big))  # and the whole picture, for large faces
        return _dedupe(found)

    def faces_in_jpeg(self, data: bytes) -> list[Rect]:
        return self.faces(_decode(data))

    def readable_faces(self, image: Image, scale_to: tuple[int, int] | None = None) -> list[Rect]:
        """Faces the auditor finds that are not pixelated (a blocky head is still a head)."""
        if scale_to is not None:
            image = np.asarray(cv2.resize(image, scale_to, interpolation=cv2.INTER_AREA), np.uint8)
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        mean = cv2.blur(grey, (3, 3))
        spread = np.sqrt(np.maximum(cv2.blur(grey * grey, (3, 3)) - mean * mean, 0.0))
        flat = spread < FLAT_STD
        h, w = grey.shape
        out = []
        for f in self.faces(image):
            x1, y1 = int(f.x1 * w), int(f.y1 * h)
            x2, y2 = max(x1 + 1, int(np.ceil(f.x2 * w))), max(y1 + 1, int(np.ceil(f.y2 * h)))
            if float(flat[y1:y2, x1:x2].mean()) < PIXELATED:
                out.append(f)
        return out

    def readable_in_jpeg(self, data: bytes) -> list[Rect]:
        return self.readable_faces(_decode(data))


def _decode(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("privacy audit: not an image")
    return np.asarray(image, dtype=np.uint8)


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    step = TILE * 3 // 4
    xs = list(range(0, max(1, w - TILE) + 1, step)) or [0]
    ys = list(range(0, max(1, h - TILE) + 1, step)) or [0]
    if xs[-1] + TILE < w:
        xs.append(w - TILE)
    if ys[-1] + TILE < h:
        ys.append(h - TILE)
    return [(x, y, min(w, x + TILE), min(h, y + TILE)) for y in ys for x in xs]


def _dedupe(boxes: list[Rect]) -> list[Rect]:
    kept: list[Rect] = []
    for box in boxes:
        if all(box.iou(k) < 0.3 for k in kept):  # noqa: PLR2004 - same face, two cascades
            kept.append(box)
    return kept


@dataclass(frozen=True, slots=True)
class AuditRecord:
    faces_before: int
    """Faces the auditor finds in the image before blurring, at the snapshot's size."""
    faces_after: int
    """Readable (not pixelated) faces it finds in the blurred image."""
    width: int
    height: int


class AuditingBlurrer:
    """A ``FaceBlurrer`` that also counts faces before and after, at the snapshot's size."""

    def __init__(
        self,
        inner: FaceBlurrer,
        auditor: FaceAuditor,
        *,
        max_side: int,
        log: Path | None = None,
    ) -> None:
        self.inner = inner
        self.auditor = auditor
        self.max_side = max_side
        self.log = log
        self.records: list[AuditRecord] = []

    def blur(self, image: Image, people: Sequence[Rect] = ()) -> Image:
        out = self.inner.blur(image, people)  # refuses (raises) before anything is counted
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        record = AuditRecord(
            faces_before=len(self.auditor.faces(image, size)),
            faces_after=len(self.auditor.readable_faces(out, size)),
            width=size[0],
            height=size[1],
        )
        self.records.append(record)
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(_row(record)) + "\n")
        return out


def _row(record: AuditRecord) -> dict[str, int]:
    return {
        "faces_before": record.faces_before,
        "faces_after": record.faces_after,
        "width": record.width,
        "height": record.height,
    }


def read_log(path: Path) -> list[AuditRecord]:
    """The records an agent wrote; none if it wrote no file."""
    if not path.is_file():
        return []
    return [AuditRecord(**json.loads(line)) for line in path.read_text().splitlines() if line]
