"""``Detection`` and the ``Detector`` role."""

from dataclasses import dataclass
from typing import Protocol

from edge.camera.frame import Image
from edge.detect.regions import Rect, Region


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object; ``box`` is normalised to the full frame."""

    label: str
    score: float
    box: Rect


class Detector(Protocol):
    name: str
    version: str

    def detect(self, image: Image, region: Region | None = None) -> list[Detection]:
        """Detect objects in *region* of *image* (whole image if ``None``)."""
