"""The only code that builds and parses CityOps MQTT topics.

Devices: ``cityops/v1/{device_id}/{channel}``. Incident changes, which other systems subscribe
to: ``cityops/incidents/v1/{department}/{incident_id}``.

Ids are validated before they reach a topic, so no '/', '+', '#' or '$' can be smuggled in.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from shared.errors import TopicError
from shared.limits import DEVICE_ID_PATTERN

PREFIX: Final = "cityops/v1"
INCIDENTS_PREFIX: Final = "cityops/incidents/v1"
"""Incident changes for other systems (Home Assistant, Node-RED), one message per change on
``{INCIDENTS_PREFIX}/{department}/{incident_id}``. Written only by the cloud's dispatcher (an
``mqtt`` route in dispatch.yaml), never by a device: a root of its own, apart from every device
topic."""
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_INCIDENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
_SHARE_GROUP_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Channel(StrEnum):
    EVENT = "event"
    TELEMETRY = "telemetry"
    STATUS = "status"
    CONFIG = "config"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"
    EVENT_ACK = "event/ack"
    """The cloud's confirmation of stored events: only ingest writes it, only the device reads."""


DEVICE_PUBLISHES: Final = frozenset(
    {Channel.EVENT, Channel.TELEMETRY, Channel.STATUS, Channel.CMD_ACK}
)
"""Channels a device may publish on (its own id only); it reads CONFIG, CMD and EVENT_ACK."""
DEVICE_READS: Final = frozenset({Channel.CONFIG, Channel.CMD, Channel.EVENT_ACK})


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    device_id: str
    channel: Channel


def validate_device_id(device_id: str) -> str:
    if not _DEVICE_RE.match(device_id):
        raise TopicError(
            f"invalid device id {device_id!r}: "
            "use 1-63 of a-z, 0-9, '-', '_', starting with a letter or digit",
            field="device_id",
        )
    return device_id


def topic(device_id: str, channel: Channel) -> str:
    """Publish topic of *device_id* on *channel*."""
    return f"{PREFIX}/{validate_device_id(device_id)}/{channel.value}"


def subscription(channel: Channel, device_id: str | None = None) -> str:
    """Subscribe filter for one device, or every device (``+``) when *device_id* is None."""
    who = "+" if device_id is None else validate_device_id(device_id)
    return f"{PREFIX}/{who}/{channel.value}"


def incident_topic(department: str, incident_id: str, prefix: str = INCIDENTS_PREFIX) -> str:
    """Topic of one incident's changes (*prefix* from the dispatch route; the default is public)."""
    if not _NAME_RE.match(department):
        raise TopicError(f"invalid department {department!r}", field="department")
    if not _INCIDENT_ID_RE.match(incident_id):
        raise TopicError(f"invalid incident id {incident_id!r}", field="incident_id")
    return f"{prefix}/{department}/{incident_id}"


def incident_filter(department: str | None = None) -> str:
    """Subscribe filter for the incidents of one department, or of all (``#``)."""
    if department is None:
        return f"{INCIDENTS_PREFIX}/#"
    if not _NAME_RE.match(department):
        raise TopicError(f"invalid department {department!r}", field="department")
    return f"{INCIDENTS_PREFIX}/{department}/+"


def shared_subscription(group: str, channel: Channel) -> str:
    """MQTT 5 shared subscription: brokers hand each message to one member of *group*."""
    if not _SHARE_GROUP_RE.match(group):
        raise TopicError(f"invalid share group {group!r}", field="group")
    return f"$share/{group}/{subscription(channel)}"


def parse(topic_name: str) -> ParsedTopic:
    """Parse a publish topic; raise ``TopicError`` for anything that is not a CityOps topic."""
    if not topic_name.startswith(PREFIX + "/"):
        raise TopicError(f"not a CityOps topic: {topic_name[:128]!r}")
    rest = topic_name[len(PREFIX) + 1 :]
    device_id, sep, channel_part = rest.partition("/")
    if not sep:
        raise TopicError(f"topic has no channel: {topic_name[:128]!r}")
    validate_device_id(device_id)
    try:
        channel = Channel(channel_part)
    except ValueError as exc:
        raise TopicError(f"unknown channel {channel_part[:64]!r}", field="channel") from exc
    return ParsedTopic(device_id=device_id, channel=channel)
