"""The node's settings, from its retained ``cityops/v1/{id}/config`` (a ``DeviceConfig``).

``DeviceConfig`` carries ``version``, ``location`` and ``telemetry_interval_s``. Thresholds travel
in a ``sensors`` object (see ``firmware/sensor_config.py`` for the pydantic model proposed for
``shared.config``)::

    "sensors": {"thresholds": [{"id": "pm25", "reading": "pm25_ugm3", "direction": "above",
                                "level": 35.0, "clear": 25.0, "severity": "medium"}],
                "deep_sleep": false}
"""

import json

DIRECTIONS = ("above", "below")
SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_INTERVAL_S = 30.0
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 3600.0
MAX_THRESHOLDS = 16
MAX_ID_LEN = 63
MAX_READING_LEN = 48
_ID_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ID_REST = _ID_FIRST + "_.-"
_DEVICE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_READING_FIRST = "abcdefghijklmnopqrstuvwxyz"
_READING_REST = _READING_FIRST + "0123456789_"
_MAX_LAT = 90.0
_MAX_LON = 180.0


class ConfigError(ValueError):
    """A refused config; ``field`` is a dotted path, as in ``shared.errors.ContractError``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field + ": " + reason)
        self.field = field
        self.reason = reason


def _chars_ok(text: str, first: str, rest: str, max_len: int) -> bool:
    if not text or len(text) > max_len or text[0] not in first:
        return False
    return all(ch in rest for ch in text[1:])


def valid_device_id(device_id: str) -> bool:
    """Same rule as ``shared.limits.DEVICE_ID_PATTERN``."""
    return _chars_ok(device_id, _DEVICE_CHARS[:36], _DEVICE_CHARS, MAX_ID_LEN)


def valid_local_id(local_id: str) -> bool:
    """Same rule as ``shared.limits.LOCAL_ID_PATTERN``."""
    return _chars_ok(local_id, _ID_FIRST, _ID_REST, MAX_ID_LEN)


def valid_reading_name(name: str) -> bool:
    """Same rule as ``shared.telemetry.ReadingName``."""
    return _chars_ok(name, _READING_FIRST, _READING_REST, MAX_READING_LEN)


def _number(data: "dict[str, object]", key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(where + key, "must be a number")
    return float(value)


class ThresholdRule:
    """Raise a ``sensor_threshold`` event when ``reading`` passes ``level``; end it past ``clear``.

    ``clear`` lies on the safe side of ``level`` (hysteresis): below it for ``above`` rules.
    """

    def __init__(
        self,
        rule_id: str,
        reading: str,
        level: float,
        clear: float,
        *,
        direction: str = "above",
        severity: str = "medium",
    ) -> None:
        self.id = rule_id
        self.reading = reading
        self.level = level
        self.clear = clear
        self.direction = direction
        self.severity = severity

    def to_json(self) -> "dict[str, object]":
        return {
            "id": self.id,
            "reading": self.reading,
            "direction": self.direction,
            "level": self.level,
            "clear": self.clear,
            "severity": self.severity,
        }


def parse_threshold(data: object, where: str) -> ThresholdRule:
    if not isinstance(data, dict):
        raise ConfigError(where.rstrip("."), "must be an object")
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not valid_local_id(rule_id):
        raise ConfigError(where + "id", "must be 1-63 of letters, digits, '.', '-', '_'")
    reading = data.get("reading")
    if not isinstance(reading, str) or not valid_reading_name(reading):
        raise ConfigError(where + "reading", "must be a reading name like pm25_ugm3")
    direction = data.get("direction", "above")
    if direction not in DIRECTIONS:
        raise ConfigError(where + "direction", "must be 'above' or 'below'")
    severity = data.get("severity", "medium")
    if severity not in SEVERITIES:
        raise ConfigError(where + "severity", "must be one of " + ", ".join(SEVERITIES))
    level = _number(data, "level", where)
    clear = _number(data, "clear", where)
    if (direction == "above" and clear > level) or (direction == "below" and clear < level):
        raise ConfigError(where + "clear", "must lie on the safe side of level (hysteresis)")
    return ThresholdRule(rule_id, reading, level, clear, direction=direction, severity=severity)


class NodeConfig:
    """What the node runs with; ``version`` -1 means the built-in defaults (no config received)."""

    def __init__(
        self,
        device_id: str,
        *,
        version: int = -1,
        interval_s: float = DEFAULT_INTERVAL_S,
        thresholds: "list[ThresholdRule] | None" = None,
        location: "tuple[float, float] | None" = None,
        deep_sleep: bool = False,
    ) -> None:
        self.device_id = device_id
        self.version = version
        self.interval_s = interval_s
        self.thresholds = thresholds or []
        self.location = location
        self.deep_sleep = deep_sleep


def _parse_sensors(sensors: object, base: NodeConfig) -> "tuple[list[ThresholdRule], bool]":
    if sensors is None:
        return base.thresholds, base.deep_sleep
    if not isinstance(sensors, dict):
        raise ConfigError("sensors", "must be an object")
    raw = sensors.get("thresholds", [])
    if not isinstance(raw, list) or len(raw) > MAX_THRESHOLDS:
        raise ConfigError("sensors.thresholds", "must be a list of at most 16 rules")
    rules = [
        parse_threshold(item, "sensors.thresholds." + str(i) + ".") for i, item in enumerate(raw)
    ]
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ConfigError("sensors.thresholds", "rule ids must be unique")
    deep_sleep = sensors.get("deep_sleep", False)
    if not isinstance(deep_sleep, bool):
        raise ConfigError("sensors.deep_sleep", "must be true or false")
    return rules, deep_sleep


def _parse_location(data: object) -> "tuple[float, float] | None":
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError("location", "must be an object with lat and lon")
    lat = _number(data, "lat", "location.")
    lon = _number(data, "lon", "location.")
    if not -_MAX_LAT <= lat <= _MAX_LAT:
        raise ConfigError("location.lat", "must be within -90..90")
    if not -_MAX_LON <= lon <= _MAX_LON:
        raise ConfigError("location.lon", "must be within -180..180")
    return (lat, lon)


def parse_config(payload: bytes, base: NodeConfig) -> NodeConfig:
    """Validate a retained config for this node.

    Missing fields take ``DeviceConfig``'s defaults, except ``sensors``: a config without it keeps
    *base*'s thresholds, because ``DeviceConfig`` has no such field yet.
    """
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise ConfigError("payload", "not JSON") from exc
    if not isinstance(data, dict):
        raise ConfigError("payload", "must be a JSON object")
    if data.get("v", 1) != 1:
        raise ConfigError("v", "unsupported schema version")
    if data.get("device_id") != base.device_id:
        raise ConfigError("device_id", "config is for another device")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigError("version", "must be an integer >= 0")
    interval = DEFAULT_INTERVAL_S
    if "telemetry_interval_s" in data:
        interval = _number(data, "telemetry_interval_s", "")
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            raise ConfigError("telemetry_interval_s", "must be within 1..3600 s")
    location = _parse_location(data.get("location"))
    thresholds, deep_sleep = _parse_sensors(data.get("sensors"), base)
    return NodeConfig(
        base.device_id,
        version=version,
        interval_s=interval,
        thresholds=thresholds,
        location=location,
        deep_sleep=deep_sleep,
    )
