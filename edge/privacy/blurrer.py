"""The ``FaceBlurrer`` role: what snapshots, the debug view and the privacy audit are handed."""

from collections.abc import Sequence
from typing import Protocol

from edge.camera.frame import Image
from edge.detect.regions import Rect


class FaceBlurrer(Protocol):
    def blur(self, image: Image, people: Sequence[Rect] = ()) -> Image:
        """Return a copy of *image* with faces (and the heads of *people*) unreadable."""
