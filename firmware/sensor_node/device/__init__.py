"""ESP32 layer of the sensor node: the only code that imports ``machine``, ``network``, ``umqtt``.

Excluded from ruff and mypy (they cannot know MicroPython's modules); kept small on purpose.
"""
