"""Building the ``EventAck`` messages that confirm stored (or refused) events to a device."""

import re
from collections.abc import Iterator

from cloud.ingest.batch import Rejection
from shared.acks import EventAck
from shared.clock import utcnow
from shared.errors import TopicError
from shared.limits import MAX_ACK_IDS
from shared.topics import Channel, parse

# The event id of a refused payload, found without parsing what may be 256 KiB of bad JSON.
_ID_RE = re.compile(
    rb'"id"\s*:\s*"([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})"'
)


def event_acks(device_id: str, stored: list[str], refused: list[str]) -> Iterator[EventAck]:
    """One ``EventAck`` per ``MAX_ACK_IDS`` ids."""
    now = utcnow()
    stored_left, refused_left = stored, refused
    while stored_left or refused_left:
        take_stored = stored_left[:MAX_ACK_IDS]
        take_refused = (
            refused_left[: MAX_ACK_IDS - len(take_stored)] if len(take_stored) < MAX_ACK_IDS else []
        )
        yield EventAck(device_id=device_id, ts=now, stored=take_stored, refused=take_refused)
        stored_left = stored_left[len(take_stored) :]
        refused_left = refused_left[len(take_refused) :]


def refused_event(rejection: Rejection) -> tuple[str, str] | None:
    """(device id, event id) of a refused event message, when both can be read."""
    try:
        parsed = parse(rejection.received.topic)
    except TopicError:
        return None
    if parsed.channel is not Channel.EVENT:
        return None
    found = _ID_RE.search(rejection.received.payload)
    return None if found is None else (parsed.device_id, found.group(1).decode())
