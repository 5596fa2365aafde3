"""The essentials of the FIWARE Smart Data Models JSON Schemas for ``Alert`` and ``Device``.

The official ``schema.json`` files (dataModel.Alert/Alert, dataModel.Device/Device) are not
installable here (the ``pysmartdatamodels`` wheel downloads them at run time), so their
required fields, enums and formats are written down below from the published attribute lists.
Two things are stricter than the originals on purpose: ``additionalProperties`` is false (we
emit only attributes the model defines), and GeoJSON is limited to the Point we produce.
"""

import re
from datetime import datetime
from typing import Any, Final

from jsonschema import Draft202012Validator, FormatChecker

_GEO_POINT: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"enum": ["Point"]},
        "coordinates": {
            "type": "array",
            "minItems": 2,
            "maxItems": 3,
            "prefixItems": [
                {"type": "number", "minimum": -180, "maximum": 180},
                {"type": "number", "minimum": -90, "maximum": 90},
            ],
        },
    },
}
_ENTITY_ID: Final[dict[str, Any]] = {"type": "string", "format": "uri", "pattern": "^urn:ngsi-ld:"}
_DATE_TIME: Final[dict[str, Any]] = {"type": "string", "format": "date-time"}
_TEXT: Final[dict[str, Any]] = {"type": "string"}
_CONTEXT: Final[dict[str, Any]] = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
}

ALERT_SUBCATEGORIES: Final = [
    "trafficJam",
    "carAccident",
    "carWrongDirection",
    "carStopped",
    "pothole",
    "roadClosed",
    "roadWorks",
    "hazardOnRoad",
    "injuredBiker",
    "snow/ice",
    "flood",
    "highTemperature",
    "lowTemperature",
    "heatWave",
    "wind",
    "fog",
    "rainfall",
    "tsunami",
    "tornado",
    "hurricane",
    "thunderstorms",
    "earthquake",
    "forestFire",
    "asthmaAttack",
    "bumpedPatient",
    "fallenPatient",
    "heartAttack",
    "suspiciousAction",
    "robbery",
    "assault",
    "civilDisorder",
    "buildingFire",
    "crowdRisk",
]

ALERT: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Smart Data Models - Alert (essentials, key-values)",
    "type": "object",
    "required": ["id", "type", "category", "dateIssued", "alertSource"],
    "additionalProperties": False,
    "properties": {
        "id": _ENTITY_ID,
        "type": {"enum": ["Alert"]},
        "@context": _CONTEXT,
        "category": {
            "enum": [
                "traffic",
                "naturalDisaster",
                "weather",
                "environment",
                "health",
                "security",
                "agriculture",
            ]
        },
        "subCategory": {"enum": ALERT_SUBCATEGORIES},
        "severity": {"enum": ["informational", "low", "medium", "high", "critical"]},
        "dateIssued": _DATE_TIME,
        "validFrom": _DATE_TIME,
        "validTo": _DATE_TIME,
        "alertSource": {"type": "string", "format": "uri", "minLength": 1},
        "description": _TEXT,
        "data": {"type": "object"},
        "dataProvider": _TEXT,
        "source": _TEXT,
        "name": _TEXT,
        "address": {"type": "object"},
        "location": _GEO_POINT,
        "owner": {"type": "array", "items": _TEXT},
        "dateCreated": _DATE_TIME,
        "dateModified": _DATE_TIME,
    },
}

DEVICE_CONTROLLED_PROPERTIES: Final = [
    "airPollution",
    "atmosphericPressure",
    "batteryLife",
    "depth",
    "electricityConsumption",
    "energy",
    "fillingLevel",
    "humidity",
    "light",
    "location",
    "motion",
    "noiseLevel",
    "occupancy",
    "power",
    "precipitation",
    "pressure",
    "smoke",
    "solarRadiation",
    "speed",
    "temperature",
    "trafficFlow",
    "waterLevel",
    "weatherConditions",
    "windDirection",
    "windSpeed",
]

DEVICE: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Smart Data Models - Device (essentials, key-values)",
    "type": "object",
    "required": ["id", "type", "controlledProperty"],
    "additionalProperties": False,
    "properties": {
        "id": _ENTITY_ID,
        "type": {"enum": ["Device"]},
        "@context": _CONTEXT,
        "name": _TEXT,
        "description": _TEXT,
        "controlledProperty": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": DEVICE_CONTROLLED_PROPERTIES},
        },
        "category": {
            "type": "array",
            "items": {
                "enum": [
                    "actuator",
                    "beacon",
                    "endgun",
                    "HVAC",
                    "implement",
                    "irrSection",
                    "irrSystem",
                    "meter",
                    "multimedia",
                    "network",
                    "sensor",
                ]
            },
        },
        "deviceState": _TEXT,
        "dateLastValueReported": _DATE_TIME,
        "dateInstalled": _DATE_TIME,
        "dateFirstUsed": _DATE_TIME,
        "firmwareVersion": _TEXT,
        "softwareVersion": _TEXT,
        "hardwareVersion": _TEXT,
        "serialNumber": _TEXT,
        "batteryLevel": {"type": "number", "minimum": 0, "maximum": 1},
        "supportedProtocol": {
            "type": "array",
            "items": {"enum": ["mqtt", "http", "https", "coap", "lwm2m", "lora", "websocket"]},
        },
        "location": _GEO_POINT,
        "owner": {"type": "array", "items": _TEXT},
        "dataProvider": _TEXT,
        "value": _TEXT,
    },
}

NORMALIZED: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "NGSI-LD normalized entity: every attribute a Property, GeoProperty or Relationship",
    "type": "object",
    "required": ["id", "type"],
    "properties": {"id": _ENTITY_ID, "type": {"type": "string"}, "@context": _CONTEXT},
    "additionalProperties": {
        "oneOf": [
            {
                "type": "object",
                "required": ["type", "value"],
                "properties": {"type": {"const": "Property"}},
            },
            {
                "type": "object",
                "required": ["type", "value"],
                "properties": {"type": {"const": "GeoProperty"}, "value": _GEO_POINT},
            },
            {
                "type": "object",
                "required": ["type", "object"],
                "properties": {"type": {"const": "Relationship"}, "object": _ENTITY_ID},
            },
        ]
    },
}

_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
_URI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value)  # raises on an impossible date
    return True


def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator that really checks ``date-time`` (RFC 3339) and ``uri`` formats.

    jsonschema skips both unless optional packages are installed; these checkers stand in.
    """
    checker = FormatChecker()
    checker.checks("date-time", raises=ValueError)(_date_time)
    checker.checks("uri")(_uri)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=checker)
