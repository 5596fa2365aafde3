"""TFLite detector (ai-edge-litert, else tflite_runtime), optional Edge TPU delegate.

Handles uint8 and float inputs from the model's own tensor details, and both output layouts:
SSD ``TFLite_Detection_PostProcess`` (boxes, classes, scores, count) and EfficientDet-style
(scores, boxes, count, classes; recognised by shape, as the order differs between exports).
"""

import ctypes.util
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera.frame import Image
from edge.detect.base import Detection
from edge.detect.regions import FULL_FRAME, Rect, Region

logger = logging.getLogger(__name__)

EDGETPU_LIBS = ("libedgetpu.so.1", "libedgetpu.1.dylib", "edgetpu.dll")
FloatArray = npt.NDArray[np.float32]


class DetectorError(RuntimeError):
    """The model or label file cannot be used; the message names the file."""


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise DetectorError(
                "no TFLite runtime: install ai-edge-litert (or tflite-runtime on old images)"
            ) from exc
    return Interpreter


def _edgetpu_delegate() -> Any:
    try:
        from ai_edge_litert.interpreter import load_delegate
    except ImportError:
        from tflite_runtime.interpreter import load_delegate
    for lib in EDGETPU_LIBS:
        if (
            ctypes.util.find_library(lib.split(".")[0].removeprefix("lib"))
            or Path("/usr/lib/" + lib).exists()
        ):
            return load_delegate(lib)
    raise DetectorError("detector.type 'edgetpu': libedgetpu is not installed")


def read_labels(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DetectorError(f"detector.labels_path: cannot read {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Raw:
    boxes: FloatArray  # (n, 4) ymin, xmin, ymax, xmax in the input crop
    classes: FloatArray
    scores: FloatArray


class TfliteDetector:
    """Runs a TFLite SSD/EfficientDet detection model on regions of a frame."""

    def __init__(
        self,
        model_path: Path,
        labels_path: Path,
        *,
        threads: int = 2,
        min_score: float = 0.35,
        label_offset: int = 1,
        edgetpu: bool = False,
    ) -> None:
        if not model_path.is_file():
            raise DetectorError(f"detector.model_path: no model file at {model_path}")
        interpreter_cls = _interpreter_class()
        delegates = [_edgetpu_delegate()] if edgetpu else None
        try:
            self._interp = interpreter_cls(
                model_path=str(model_path), num_threads=threads, experimental_delegates=delegates
            )
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"detector.model_path: cannot load {model_path}: {exc}") from exc
        self.labels = read_labels(labels_path)
        self.label_offset = label_offset
        self.min_score = min_score
        inp = self._interp.get_input_details()[0]
        self._input_index: int = inp["index"]
        _, self.input_h, self.input_w, _ = (int(v) for v in inp["shape"])
        self._input_dtype = inp["dtype"]
        self._outputs = self._interp.get_output_details()
        self._read = self._pick_layout()
        self.name = model_path.stem
        self.version = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
        self.invocations = 0

    def _pick_layout(self) -> Callable[[], _Raw]:
        outs = self._outputs
        if len(outs) < 3:  # noqa: PLR2004
            raise DetectorError("detector.model_path: not a detection model (needs 3-4 outputs)")
        box_idx = next((o["index"] for o in outs if len(o["shape"]) == 3), None)  # noqa: PLR2004
        if box_idx is None:
            raise DetectorError("detector.model_path: no [1, N, 4] box output")
        two_d = [o for o in outs if len(o["shape"]) == 2]  # noqa: PLR2004
        if len(two_d) < 2:  # noqa: PLR2004
            raise DetectorError("detector.model_path: needs class and score outputs")
        if "PostProcess" in str(outs[0]["name"]) or outs[0]["index"] == box_idx:
            # SSD order: boxes, classes, scores, count.
            cls_idx, score_idx = two_d[0]["index"], two_d[1]["index"]
        else:
            # EfficientDet (Model Maker) order: scores, boxes, count, classes.
            score_idx, cls_idx = two_d[0]["index"], two_d[1]["index"]

        def read() -> _Raw:
            get = self._interp.get_tensor
            return _Raw(
                boxes=np.asarray(get(box_idx)[0], dtype=np.float32),
                classes=np.asarray(get(cls_idx)[0], dtype=np.float32),
                scores=np.asarray(get(score_idx)[0], dtype=np.float32),
            )

        return read

    def _prepare(self, crop: Image) -> npt.NDArray[Any]:
        resized = cv2.resize(crop, (self.input_w, self.input_h), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        if self._input_dtype == np.uint8:
            return rgb[np.newaxis]
        if self._input_dtype == np.int8:
            return (rgb.astype(np.int16) - 128).astype(np.int8)[np.newaxis]
        # Float models (EfficientDet-Lite, MobileNet float) expect [-1, 1].
        floats = (rgb.astype(np.float32) - 127.5) / 127.5
        return floats[np.newaxis]

    def label(self, class_id: int) -> str:
        i = class_id + self.label_offset
        return self.labels[i] if 0 <= i < len(self.labels) else f"class{class_id}"

    def detect(self, image: Image, region: Region | None = None) -> list[Detection]:
        region = region or FULL_FRAME
        h, w = image.shape[:2]
        r = region.rect
        x1, y1 = int(r.x1 * w), int(r.y1 * h)
        x2, y2 = max(x1 + 1, int(r.x2 * w)), max(y1 + 1, int(r.y2 * h))
        crop = image[y1:y2, x1:x2]
        self._interp.set_tensor(self._input_index, self._prepare(crop))
        self._interp.invoke()
        self.invocations += 1
        raw = self._read()
        out: list[Detection] = []
        cw, ch = (x2 - x1) / w, (y2 - y1) / h
        ox, oy = x1 / w, y1 / h
        for box, cls, score in zip(raw.boxes, raw.classes, raw.scores, strict=False):
            s = float(score)
            if s < self.min_score:
                continue
            label = self.label(int(cls))
            if label == "???":
                continue
            ymin, xmin, ymax, xmax = (min(max(float(v), 0.0), 1.0) for v in box)
            rect = Rect(ox + xmin * cw, oy + ymin * ch, ox + xmax * cw, oy + ymax * ch)
            out.append(Detection(label, s, rect))
        return out
