"""Frame sources: OpenCV (file, URL, USB, GStreamer), picamera2, file replay."""

from edge.camera.frame import Frame
from edge.camera.source import FrameSource, open_source

__all__ = ["Frame", "FrameSource", "open_source"]
