"""Turn one raw MQTT message into an accepted contract model or a rejection with a reason."""

from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from cloud.db.ingest import RejectReason
from cloud.ingest.batch import Accepted, Received, Rejection
from cloud.settings import IngestSettings
from shared.codec import decode
from shared.commands import CommandAck
from shared.errors import ContractError, PayloadTooLargeError, TopicError
from shared.events import Event
from shared.telemetry import DeviceStatus, Telemetry
from shared.topics import Channel, ParsedTopic, parse

MODELS: Final[dict[Channel, type[BaseModel]]] = {
    Channel.EVENT: Event,
    Channel.TELEMETRY: Telemetry,
    Channel.STATUS: DeviceStatus,
    Channel.CMD_ACK: CommandAck,
}
"""The channels the ingestor subscribes to, and the model each one carries."""


def _time_fields(*names: str) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """*names*, and one C call that reads them all from a message (always as a tuple)."""
    if len(names) == 1:
        get_one = attrgetter(names[0])
        return names, lambda obj: (get_one(obj),)
    return names, attrgetter(*names)


_TIME_FIELDS: Final[
    dict[type[BaseModel], tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]]
] = {
    Event: _time_fields("observed_at", "started_at", "ended_at"),
    Telemetry: _time_fields("ts"),
    DeviceStatus: _time_fields("ts"),
    CommandAck: _time_fields("ts"),
}
"""Per model, the timestamps checked against the ingestor's clock, in the order checked."""

_TOPIC_CACHE_SIZE: Final = 65_536
"""Valid topics remembered (a few per device); the cache is emptied when it is full."""


def channel_label(topic: str) -> str:
    """Metrics label of a topic: its channel, or ``unknown``."""
    try:
        return parse(topic).channel.value
    except TopicError:
        return "unknown"


class Validator:
    """Checks topic, size, JSON, schema, device id, clock skew and replay, in that order."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self._topics: dict[str, ParsedTopic] = {}

    def _parse(self, topic: str) -> ParsedTopic:
        """``shared.topics.parse``, remembered per valid topic (devices repeat theirs)."""
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = parse(topic)  # raises TopicError; refused topics are not remembered
            if len(self._topics) >= _TOPIC_CACHE_SIZE:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def check(self, msg: Received) -> Accepted | Rejection:  # noqa: PLR0911 - one per check
        try:
            parsed = self._parse(msg.topic)
        except TopicError as exc:
            return self._reject(msg, RejectReason.BAD_TOPIC, exc.field, exc.reason, None)
        device_id = parsed.device_id
        model = MODELS.get(parsed.channel)
        if model is None:
            reason = f"channel {parsed.channel.value!r} is not ingested"
            return self._reject(msg, RejectReason.BAD_TOPIC, "channel", reason, device_id)
        try:
            obj = decode(model, msg.payload)
        except PayloadTooLargeError as exc:
            return self._reject(msg, RejectReason.TOO_LARGE, exc.field, exc.reason, device_id)
        except ContractError as exc:
            return self._reject(msg, _classify(exc), exc.field, exc.reason, device_id)
        payload_device = getattr(obj, "device_id", None)
        if payload_device != device_id:
            detail = f"payload device_id {payload_device!r} differs from the topic's {device_id!r}"
            return self._reject(msg, RejectReason.DEVICE_MISMATCH, "device_id", detail, device_id)
        problem = self._time_problem(obj, msg.received_at)
        if problem is not None:
            reason, field, detail = problem
            return self._reject(msg, reason, field, detail, device_id)
        return Accepted(received=msg, device_id=device_id, message=obj)  # type: ignore[arg-type]

    def _time_problem(self, obj: BaseModel, now: datetime) -> tuple[RejectReason, str, str] | None:
        limit = self.settings.max_future_skew_s
        names, values = _TIME_FIELDS[type(obj)]
        # A time not after *now* is never too far ahead when the limit is >= 0 (the settings
        # say so): one comparison, and the subtraction only for the rest.
        past_is_fine = limit >= 0
        for index, value in enumerate(values(obj)):
            if value is not None and not (past_is_fine and value <= now):
                skew = (value - now).total_seconds()
                if skew > limit:
                    name = names[index]
                    detail = f"{name} is {skew:.0f} s ahead of the ingestor (limit {limit:.0f} s)"
                    return RejectReason.FUTURE_TIMESTAMP, name, detail
        if type(obj) is Event:
            event_id = obj.id
            age_s = now.timestamp() - int(event_id[:8] + event_id[9:13], 16) / 1000  # UUIDv7 ms
            if -age_s > limit:
                detail = f"id was minted {-age_s:.0f} s in the future (limit {limit:.0f} s)"
                return RejectReason.FUTURE_TIMESTAMP, "id", detail
            if age_s > self.settings.dedup_window_s:
                detail = (
                    f"id is {age_s:.0f} s old, beyond the dedup window of "
                    f"{self.settings.dedup_window_s:.0f} s: refused as a replay"
                )
                return RejectReason.REPLAY, "id", detail
        return None

    @staticmethod
    def _reject(
        msg: Received, reason: RejectReason, field: str | None, detail: str, device_id: str | None
    ) -> Rejection:
        return Rejection(
            received=msg, reason=reason, field=field, detail=detail[:500], device_id=device_id
        )


def _classify(exc: ContractError) -> RejectReason:
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        kind = cause.errors(include_url=False)[0]["type"]
        if kind in {"json_invalid", "json_type"}:
            return RejectReason.INVALID_JSON
    if "in the future" in exc.reason:
        return RejectReason.FUTURE_TIMESTAMP
    return RejectReason.SCHEMA
