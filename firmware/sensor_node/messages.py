"""Wire messages of the node: byte for byte what ``shared/`` validates, on its topics."""

from firmware.sensor_node.isotime import iso_from_ms
from firmware.sensor_node.jsonw import Fixed, dumpb

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.sensor_node.config import NodeConfig
    from firmware.sensor_node.jsonw import JsonValue
    from firmware.sensor_node.thresholds import Crossing

PREFIX = "cityops/v1"
EVENT = "event"
TELEMETRY = "telemetry"
STATUS = "status"
CONFIG = "config"
CMD = "cmd"
CMD_ACK = "cmd/ack"
FIRMWARE = "cityops-sensor-node/0.1.0"
READING_PLACES = 2
COORD_PLACES = 6
MAX_UPTIME_S = 10 * 365 * 86400


def topic(device_id: str, channel: str) -> str:
    return PREFIX + "/" + device_id + "/" + channel


def telemetry(
    device_id: str,
    *,
    now_ms: int,
    uptime_ms: int,
    readings: "dict[str, float]",
    battery_pct: "float | None",
    outbox_depth: int,
    dropped_telemetry: int,
    dropped_events: int,
) -> bytes:
    """A ``shared.telemetry.Telemetry`` for a sensor node (``readings`` + ``battery_pct``)."""
    msg: dict[str, JsonValue] = {
        "v": 1,
        "device_id": device_id,
        "ts": iso_from_ms(now_ms),
        "uptime_s": Fixed(min(uptime_ms / 1000, MAX_UPTIME_S), 1),
        "outbox_depth": outbox_depth,
        "dropped_events": dropped_events,
        "dropped_telemetry": dropped_telemetry,
        "readings": {name: Fixed(value, READING_PLACES) for name, value in readings.items()},
    }
    if battery_pct is not None:
        msg["battery_pct"] = Fixed(min(max(battery_pct, 0.0), 100.0), 1)
    msg["firmware"] = FIRMWARE
    return dumpb(msg)


def _summary(crossing: "Crossing") -> str:
    rule = crossing.rule
    value = Fixed(crossing.value, READING_PLACES).text()
    if crossing.phase == "start":
        sign = ">=" if rule.direction == "above" else "<="
        return rule.reading + " " + value + " " + sign + " " + Fixed(rule.level, 2).text()
    return rule.reading + " back to " + value


def threshold_event(device_id: str, crossing: "Crossing", config: "NodeConfig") -> bytes:
    """A ``shared.events.Event`` of kind ``sensor_threshold`` (``zone_id`` = the rule id).

    ``start`` and ``end`` have their own ids (the id is the idempotency key); ``end`` names the
    ``start`` it closes in ``attributes.start_id`` and shares its ``started_at``.
    """
    rule = crossing.rule
    episode = crossing.episode
    started = iso_from_ms(episode.started_ms)
    observed = iso_from_ms(crossing.at_ms)
    msg: dict[str, JsonValue] = {
        "v": 1,
        "id": crossing.event_id,
        "device_id": device_id,
        "kind": "sensor_threshold",
        "phase": crossing.phase,
        "severity": rule.severity,
        "started_at": started,
        "observed_at": observed,
    }
    if crossing.phase == "end":
        msg["ended_at"] = observed
    msg["zone_id"] = rule.id
    if config.location is not None:
        msg["location"] = {
            "lat": Fixed(config.location[0], COORD_PLACES),
            "lon": Fixed(config.location[1], COORD_PLACES),
        }
    if crossing.phase == "end":
        msg["dwell_s"] = Fixed(max(crossing.at_ms - episode.started_ms, 0) / 1000, 3)
    msg["summary"] = _summary(crossing)
    attributes: dict[str, JsonValue] = {
        "reading": rule.reading,
        "value": Fixed(crossing.value, READING_PLACES),
        "level": Fixed(rule.level, READING_PLACES),
        "clear": Fixed(rule.clear, READING_PLACES),
        "direction": rule.direction,
        "peak": Fixed(episode.peak, READING_PLACES),
    }
    if crossing.phase == "end":
        attributes["start_id"] = episode.start_id
    if crossing.reason:
        attributes["reason"] = crossing.reason
    msg["attributes"] = attributes
    return dumpb(msg)


def status(device_id: str, *, online: bool, now_ms: int, config_version: int) -> bytes:
    """A retained ``shared.telemetry.DeviceStatus`` (the Last Will is the ``offline`` one)."""
    msg: dict[str, JsonValue] = {
        "v": 1,
        "device_id": device_id,
        "state": "online" if online else "offline",
        "ts": iso_from_ms(now_ms),
        "software": FIRMWARE,
    }
    if config_version >= 0:
        msg["config_version"] = config_version
    return dumpb(msg)


def config_ack(device_id: str, *, now_ms: int, version: int, ok: bool, message: str) -> bytes:
    """A ``shared.commands.CommandAck`` with ``name=config`` for an applied (or refused) config."""
    msg: dict[str, JsonValue] = {
        "v": 1,
        "device_id": device_id,
        "name": "config",
        "ok": ok,
        "ts": iso_from_ms(now_ms),
        "message": message[:256],
    }
    if version >= 0:
        msg["config_version"] = version
    return dumpb(msg)
