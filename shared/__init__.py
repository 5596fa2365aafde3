"""The wire contract of CityOps: message models, MQTT topics and limits shared by edge and cloud.

This package imports nothing from the other CityOps packages.
"""

from shared.acks import EventAck
from shared.commands import Command, CommandAck, CommandName
from shared.config import (
    CameraConfig,
    DeviceConfig,
    LineConfig,
    RuleParams,
    ScheduleWindow,
    Zone,
    ZoneKind,
)
from shared.errors import ContractError, PayloadTooLargeError, TopicError
from shared.events import (
    Box,
    DetectedObject,
    Event,
    EventKind,
    Location,
    ModelInfo,
    Phase,
    Severity,
    Snapshot,
)
from shared.telemetry import CameraHealth, CameraState, DeviceState, DeviceStatus, Telemetry

__all__ = [
    "Box",
    "CameraConfig",
    "CameraHealth",
    "CameraState",
    "Command",
    "CommandAck",
    "CommandName",
    "ContractError",
    "DetectedObject",
    "DeviceConfig",
    "DeviceState",
    "DeviceStatus",
    "Event",
    "EventAck",
    "EventKind",
    "LineConfig",
    "Location",
    "ModelInfo",
    "PayloadTooLargeError",
    "Phase",
    "RuleParams",
    "ScheduleWindow",
    "Severity",
    "Snapshot",
    "Telemetry",
    "TopicError",
    "Zone",
    "ZoneKind",
]
