"""Object detectors: ``Detector`` protocol, TFLite backend, regions (crops and tiles)."""
