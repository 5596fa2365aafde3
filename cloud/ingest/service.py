"""The ingestor: MQTT (shared subscription, persistent session, manual acks) -> batches -> store.

Per batch, in this order: validate every message (refusals become dead letters), drop event ids
already stored, write events and telemetry to the store (retrying with backoff while it is down),
await the steps (the incident step: retried until committed) and then the hooks (live stream:
best effort) with the new events, record ids/dead letters/device registry in SQL, and only then
acknowledge the MQTT messages. A crash anywhere before the acks makes the broker redeliver the
batch; the store and the id table make the second pass a no-op, so nothing is lost or doubled.
Hooks are therefore called at least once per event (normally exactly once).

Batches overlap: the next one is validated while up to ``ingest.max_batches_in_flight`` are being
stored. An event id is handled by one batch in flight at a time (the others count it as a
duplicate), hooks run in batch order, and acks follow each batch's own commit.
"""

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.db.ingest import RejectReason
from cloud.db.tables import create_all
from cloud.ingest.batch import Accepted, Batch, Received, Rejection
from cloud.ingest.confirm import event_acks, refused_event
from cloud.ingest.gc_tuning import tune_for_batches
from cloud.ingest.hooks import EventHook
from cloud.ingest.metrics import IngestMetrics, IngestStats
from cloud.ingest.state import IngestState
from cloud.ingest.subscriber import BrokerError, Inbox, connect
from cloud.ingest.validate import Validator, channel_label
from cloud.settings import CloudSettings
from cloud.store.base import (
    EventStore,
    KeepsSourceJson,
    StoreRejectedError,
    StoreUnavailableError,
)
from shared.clock import utcnow
from shared.codec import encode
from shared.commands import CommandAck
from shared.events import Event
from shared.limits import CONTRACT_VERSION
from shared.telemetry import DeviceStatus, Telemetry
from shared.topics import Channel, topic

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHANNEL_OF: dict[type, str] = {
    Event: Channel.EVENT.value,
    Telemetry: Channel.TELEMETRY.value,
    DeviceStatus: Channel.STATUS.value,
    CommandAck: Channel.CMD_ACK.value,
}
_IDLE_WAIT_S = 0.5


@dataclass(slots=True)
class _Flight:
    """One batch being stored: its task, and a flag set once its hooks have run."""

    hooked: asyncio.Event
    task: "asyncio.Task[None]" = field(init=False)


class Stopped(Exception):  # noqa: N818 - a signal, not an error
    """The stop event was set while waiting for a backend; the batch stays unacknowledged."""


class Ingestor:
    """Runs until *stop* is set; reconnects to the broker and retries the store forever."""

    def __init__(
        self,
        settings: CloudSettings,
        store: EventStore,
        engine: Engine,
        hooks: Sequence[EventHook] = (),
        steps: Sequence[EventHook] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.steps: list[EventHook] = list(steps)
        """Must commit before the batch is acknowledged (the incident step): retried."""
        self.hooks: list[EventHook] = list(hooks)
        self.state = IngestState(engine, settings.ingest.dead_letter_payload_bytes)
        self.validator = Validator(settings.ingest)
        self.metrics = IngestMetrics()
        self.connected = asyncio.Event()
        """Set while subscribed to the broker (tests and health checks wait on it)."""
        self._generation = 0
        self._stop = asyncio.Event()
        self._last_prune = 0.0
        self._claimed: set[str] = set()
        """Event ids of the batches being stored now (a batch skips ids another one holds)."""
        self._sql = asyncio.Lock()
        self._contracts: dict[str, int] = {}
        """Delivery contract per device, from its latest status (unknown: the current one)."""
        self._group = settings.ingest.share_group
        self.prune_every_s = 60.0
        """How often remembered ids and dead letters are trimmed."""

    @property
    def registry(self) -> CollectorRegistry:
        """Prometheus registry of this ingestor (``--metrics-port``, or rendered by the API)."""
        return self.metrics.registry

    def stats(self) -> IngestStats:
        return self.metrics.stats()

    def add_hook(self, hook: EventHook) -> None:
        self.hooks.append(hook)

    # ------------------------------------------------------------------ main loop

    async def run(self, stop: asyncio.Event | None = None) -> None:
        self._stop = stop if stop is not None else asyncio.Event()
        try:
            await self._retry("state database", lambda: asyncio.to_thread(create_all, self.engine))
            await self._retry("store setup", self.store.setup)
        except Stopped:
            return
        tune_for_batches()
        backoff = self.settings.ingest.retry_initial_s
        mqtt = self.settings.mqtt
        while not self._stop.is_set():
            was_subscribed = False
            try:
                self._generation += 1
                async with connect(self.settings, self._generation) as inbox:
                    log.info(
                        "ingest subscribed at %s:%s with the %s client (generation %d)",
                        mqtt.host,
                        mqtt.port,
                        self.settings.ingest.client,
                        self._generation,
                    )
                    self.connected.set()
                    was_subscribed = True
                    backoff = self.settings.ingest.retry_initial_s
                    await self._consume(inbox)
            except BrokerError as exc:
                wait = 0.0 if was_subscribed else backoff
                log.warning(
                    "MQTT %s:%s: %s; reconnecting in %.1f s", mqtt.host, mqtt.port, exc, wait
                )
            finally:
                self.connected.clear()
            if self._stop.is_set():
                break
            if was_subscribed:
                # The first attempt after losing a working connection goes at once: a restarted
                # broker does not restore shared subscriptions (Mosquitto 2.0.11), and devices
                # reconnect within a second; every moment unsubscribed is a moment of drops.
                continue
            await self._sleep(backoff)
            backoff = min(backoff * 2, self.settings.ingest.retry_max_s)

    async def _consume(self, inbox: Inbox) -> None:
        """Gather and validate the next batch while earlier ones are stored.

        Up to ``ingest.max_batches_in_flight`` batches are being stored at once (the store write
        of one overlaps the SQL commit of the one before and the validation of the one after).
        Hooks run in batch order, each batch is acknowledged only by its own flush after its
        store write and SQL commit, and an event id is handled by one batch in flight at a time.
        """
        flights: collections.deque[_Flight] = collections.deque()
        try:
            await self._batches(inbox, flights)
            while flights:
                await flights.popleft().task
        except Stopped:
            return
        except asyncio.CancelledError:
            for flight in flights:
                flight.task.cancel()  # unacknowledged: the broker redelivers them
            flights.clear()
            raise
        finally:
            # Leaving early (disconnect, error): let the batches in flight finish their store
            # writes and SQL commits, so they never race the next connection's flushes.
            for flight in flights:
                with contextlib.suppress(Stopped):
                    await flight.task
        if inbox.closed and not self._stop.is_set():
            raise BrokerError("disconnected from the broker")

    async def _batches(self, inbox: Inbox, flights: "collections.deque[_Flight]") -> None:
        limit = self.settings.ingest.max_batches_in_flight
        leaving = False
        while not inbox.closed:
            if self._stop.is_set() and not leaving:
                leaving = await self._leave(inbox)
                if not leaving:
                    return
            batch = await self._gather(inbox, draining=leaving)
            self.metrics.pending.set(inbox.pending)
            while len(flights) >= limit:
                await flights.popleft().task
            if len(batch):
                flights.append(self._launch(batch, inbox, flights[-1] if flights else None))
            elif leaving:
                return  # unsubscribed and nothing more came: the session can end

    async def _leave(self, inbox: Inbox) -> bool:
        """On stop with ``leave_on_stop`` (scale-down): leave the share group, then drain.

        False: just stop (the persistent session waits for this worker to come back).
        """
        if not self.settings.ingest.leave_on_stop:
            return False
        log.info("leaving share group %s: draining, then ending the session", self._group)
        await inbox.leave()
        return True

    def _launch(self, batch: Batch, inbox: Inbox, previous: "_Flight | None") -> "_Flight":
        """Start storing *batch*; it claims its event ids unless a batch in flight holds them."""
        mine = [i for i in batch.events if i not in self._claimed]
        self._claimed.update(mine)
        flight = _Flight(hooked=asyncio.Event())
        after = previous.hooked if previous is not None else None
        flight.task = asyncio.create_task(self._flush_and_prune(batch, inbox, mine, after, flight))
        return flight

    async def _gather(self, inbox: Inbox, *, draining: bool = False) -> Batch:
        size = self.settings.ingest.batch_size
        batch = Batch()
        deadline: float | None = None
        while len(batch) < size:
            records = inbox.take(min(512, size - len(batch)))
            if not records:
                if (self._stop.is_set() and not draining) or inbox.closed:
                    break
                timeout = _IDLE_WAIT_S if deadline is None else deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    arrived = await inbox.wait(timeout)
                except BrokerError:
                    break
                if draining and not arrived:
                    break  # left the group and quiet for a while: nothing more is coming
                continue
            if deadline is None:
                batch.started = time.monotonic()
                deadline = batch.started + self.settings.ingest.batch_interval_s
            for received in records:
                self._add(batch, received)
            if time.monotonic() > deadline:
                break
        return batch

    def _add(self, batch: Batch, received: Received) -> None:
        try:
            item = self.validator.check(received)
        except Exception as exc:  # noqa: BLE001 - a bug in one check must not stop the ingest
            log.warning("unexpected error validating a message on %s: %r", received.topic, exc)
            item = Rejection(received, RejectReason.SCHEMA, "payload", repr(exc)[:500], None)
        if isinstance(item, Accepted):
            channel = _CHANNEL_OF[type(item.message)]
            if isinstance(item.message, DeviceStatus):
                self._contracts[item.device_id] = item.message.contract
        else:
            channel = channel_label(received.topic)
        batch.add(item, channel)

    # ------------------------------------------------------------------ one batch

    async def _flush_and_prune(
        self,
        batch: Batch,
        inbox: Inbox,
        mine: list[str],
        after: asyncio.Event | None,
        flight: "_Flight",
    ) -> None:
        try:
            await self._flush(batch, inbox, mine, after, flight.hooked)
        finally:
            flight.hooked.set()  # never leave the next batch waiting for hooks that won't run
            self._claimed.difference_update(mine)
        await self._maybe_prune()

    async def _flush(
        self,
        batch: Batch,
        inbox: Inbox,
        mine: list[str],
        after: asyncio.Event | None,
        hooked: asyncio.Event,
    ) -> None:
        """Store, hook (after the batch before has), commit, acknowledge: one batch."""
        known = (
            await self._retry(
                "state database", lambda: asyncio.to_thread(self.state.known_ids, mine)
            )
            if mine
            else set()
        )
        new = [batch.events[i] for i in mine if i not in known]
        new, telemetry = await self._store(batch, new, list(batch.telemetry))
        if after is not None:
            await after.wait()
        for step in self.steps:
            if new:
                await self._retry("incident step", functools.partial(step, new))
        for hook in self.hooks:
            if not new:
                break
            try:
                await hook(new)
            except Exception:
                self.metrics.count_hook_error()
                log.exception("event hook %r failed; the events stay stored", hook)
        hooked.set()
        new_ids = [e.id for e in new]
        async with self._sql:
            await self._retry(
                "state database",
                lambda: asyncio.to_thread(
                    self.state.commit, new_ids, batch.rejections, list(batch.devices.values())
                ),
            )
        if inbox.generation == self._generation:
            inbox.ack(batch.received)
        self._confirm_to_devices(batch, mine, inbox)
        self._count(batch, new, telemetry, len(batch.events) - len(new))

    def _confirm_to_devices(self, batch: Batch, mine: list[str], inbox: Inbox) -> None:
        """Tell each device which of its events are now stored (delivery contract 2).

        Runs after the batch's store write, its hooks and its SQL commit, so a confirmed event
        survives any crash of this process. The ids are this batch's own (new or already
        stored); refused ones are confirmed as refused so the device stops sending them.
        Devices whose status says contract 1 (they delete on PUBACK) get nothing.
        """
        refused_sources = {id(r.received) for r in batch.rejections}
        stored: dict[str, list[str]] = {}
        refused: dict[str, list[str]] = {}
        for event_id in mine:
            event = batch.events[event_id]
            source = batch.sources.get(id(event))
            if source is not None and id(source) in refused_sources:
                refused.setdefault(event.device_id, []).append(event_id)
            else:
                stored.setdefault(event.device_id, []).append(event_id)
        for rejection in batch.rejections:
            found = refused_event(rejection)
            if found is not None:
                refused.setdefault(found[0], []).append(found[1])
        for device_id in stored.keys() | refused.keys():
            if self._contracts.get(device_id, CONTRACT_VERSION) < 2:  # noqa: PLR2004
                continue
            for ack in event_acks(device_id, stored.get(device_id, []), refused.get(device_id, [])):
                inbox.publish(topic(device_id, Channel.EVENT_ACK), encode(ack))
                self.metrics.count_confirmed(len(ack.stored) + len(ack.refused))

    async def _store(
        self, batch: Batch, events: list[Event], telemetry: list[Telemetry]
    ) -> tuple[list[Event], list[Telemetry]]:
        """Write both kinds; items the store refuses outright become dead letters."""
        try:
            await self._retry("store", lambda: self._write_events(batch, events))
        except StoreRejectedError:
            events = await self._one_by_one(batch, events)
        try:
            await self._retry("store", lambda: self.store.write_telemetry(telemetry))
        except StoreRejectedError:
            telemetry = await self._one_by_one(batch, telemetry)
        return events, telemetry

    async def _write_events(self, batch: Batch, events: list[Event]) -> None:
        if isinstance(self.store, KeepsSourceJson):
            sources = [batch.sources[id(e)].payload for e in events]
            await self.store.write_events_with_sources(events, sources)
        else:
            await self.store.write_events(events)

    async def _one_by_one(self, batch: Batch, items: Sequence[T]) -> list[T]:
        """The store refused a whole write: find the items it refuses and dead-letter them."""
        kept: list[T] = []
        for item in items:
            write = _writer(self.store, item)
            try:
                await self._retry("store", write)
            except StoreRejectedError as exc:
                received = batch.sources[id(item)]
                device_id = getattr(item, "device_id", None)
                batch.rejections.append(
                    Rejection(
                        received, RejectReason.STORE_REJECTED, None, str(exc)[:500], device_id
                    )
                )
                continue
            kept.append(item)
        return kept

    def _count(
        self, batch: Batch, new: list[Event], telemetry: list[Telemetry], known: int
    ) -> None:
        m = self.metrics
        for channel, n in batch.channels.items():
            m.count_received(channel, n)
        reasons: dict[str, int] = {}
        for r in batch.rejections:
            reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1
        for reason, n in reasons.items():
            m.count_rejected(reason, n)
        m.count_stored("event", len(new))
        m.count_stored("telemetry", len(telemetry))
        m.count_duplicates(known + batch.in_batch_duplicates)
        m.count_batch(time.monotonic() - batch.started)
        if new:
            now = utcnow()
            newest = max(e.observed_at for e in new)
            m.lag.set(max(0.0, (now - newest).total_seconds()))
            m.observe_lags([(now - e.observed_at).total_seconds() for e in new])

    # ------------------------------------------------------------------ helpers

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Await *call* until it succeeds; back off on outages; raise ``Stopped`` on stop."""
        delay = self.settings.ingest.retry_initial_s
        failures = 0
        while True:
            try:
                result = await call()
            except (StoreUnavailableError, SQLAlchemyError, OSError) as exc:
                failures += 1
                self.metrics.count_retry("store" if what.startswith("store") else "database")
                if what.startswith("store"):
                    self.metrics.store_up.set(0)
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "%s unavailable (attempt %d): %s; retrying in %.1f s",
                        what,
                        failures,
                        exc,
                        delay,
                    )
                if self._stop.is_set():
                    raise Stopped from exc
                await self._sleep(delay)
                if self._stop.is_set():
                    raise Stopped from exc
                delay = min(delay * 2, self.settings.ingest.retry_max_s)
                continue
            if what.startswith("store"):  # "store" and "store setup": it answers
                self.metrics.store_up.set(1)
            if failures:
                log.info("%s available again after %d failed attempts", what, failures)
            return result

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self.prune_every_s:
            return
        self._last_prune = now
        oldest = utcnow() - timedelta(seconds=self.settings.ingest.dedup_window_s)
        keep = self.settings.ingest.dead_letter_max_rows
        try:
            async with self._sql:  # never beside a flush's SQL commit
                forgotten = await asyncio.to_thread(self.state.forget_before, oldest)
                trimmed = await asyncio.to_thread(self.state.trim_dead_letters, keep)
        except SQLAlchemyError as exc:
            log.warning("could not trim ingest tables: %s", exc)
            return
        if forgotten or trimmed:
            log.info("forgot %d old event ids, deleted %d old dead letters", forgotten, trimmed)


def _writer(store: EventStore, item: object) -> Callable[[], Awaitable[None]]:
    if isinstance(item, Event):
        return lambda: store.write_events([item])
    if isinstance(item, Telemetry):
        return lambda: store.write_telemetry([item])
    raise TypeError(f"cannot store {type(item).__name__}")
