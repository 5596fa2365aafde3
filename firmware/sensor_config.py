"""Sensor-node config: ``shared.config.DeviceConfig`` with its ``sensors`` section (thresholds).

Kept as names for the firmware tests; the models live in the wire contract.
"""

from shared.config import DeviceConfig, SensorSettings, SensorThreshold

__all__ = ["SensorNodeConfig", "SensorSettings", "SensorThreshold"]

SensorNodeConfig = DeviceConfig
"""A sensor node's config is a plain ``DeviceConfig``; ``sensors`` holds its thresholds."""
