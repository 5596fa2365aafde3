"""``EventAck``: the cloud tells a device which of its events are stored (delivery contract 2).

Published by ingest on ``cityops/v1/{device_id}/event/ack`` after the batch holding the events is
committed; the device deletes them from its outbox only then. An id may be confirmed more than
once (a re-sent event is a duplicate the cloud drops, and is confirmed again).
"""

from typing import Literal

from pydantic import Field

from shared.base import DeviceId, UtcDatetime, WireModel
from shared.events import EventId
from shared.limits import MAX_ACK_IDS


class EventAck(WireModel):
    v: Literal[1] = 1
    device_id: DeviceId
    ts: UtcDatetime
    stored: list[EventId] = Field(
        default_factory=list,
        max_length=MAX_ACK_IDS,
        description="Ids now in the cloud's store (new, or already there).",
    )
    refused: list[EventId] = Field(
        default_factory=list,
        max_length=MAX_ACK_IDS,
        description="Ids the cloud refused for good (kept as dead letters): do not send again.",
    )
