"""The dispatcher: queues deliveries of incident changes, sends them with retries.

Deliveries are rows in ``dispatch_deliveries`` (an outbox) written in the same transaction as
the change they announce, so a crash loses none, a restart resends what was pending, and the
dead letters stay visible in the API until someone retries them.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from cloud.dispatch.config import DispatchConfig, DispatchRoute
from cloud.dispatch.senders import DeliveryError, Sender, sender_for
from cloud.dispatch.tables import Delivery, DeliveryStatus
from cloud.ops.models import IncidentChange
from cloud.settings import dispatch_client_id
from shared.clock import utcnow
from shared.ids import new_id

logger = logging.getLogger(__name__)
_MAX_ERROR_TEXT = 500
_BATCH = 50
_LEASE_MARGIN_S = 5.0


def lease_s(route: DispatchRoute) -> float:
    """How long a claimed delivery is not picked again: past the send's own timeout.

    A process killed mid-send holds its claim this long; then another process sends it again
    (same delivery id, so the receiver can drop the repeat).
    """
    return 2 * route.target.timeout_s + _LEASE_MARGIN_S


class DeliveryOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    route_id: str
    target_type: str
    incident_id: str
    department: str
    change_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: Delivery) -> "DeliveryOut":
        return cls(
            id=row.id,
            route_id=row.route_id,
            target_type=row.target_type,
            incident_id=row.incident_id,
            department=row.department,
            change_type=row.change_type,
            status=DeliveryStatus(row.status),
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            last_status_code=row.last_status_code,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )


class IncidentNotifiable(Protocol):
    """What ``attach`` needs of ``OpsService``."""

    def add_notifier(self, notifier: Callable[[Session, Sequence[IncidentChange]], None]) -> None:
        """Called inside each transaction that commits changes."""

    def add_listener(self, callback: Callable[[IncidentChange], Awaitable[None]]) -> None:
        """Called after each committed change."""


async def _first(*waits: Awaitable[object]) -> None:
    """Return when the first of *waits* is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def notice_payload(change: IncidentChange) -> bytes:
    """The JSON a department system receives: the change and the incident as the API shows it."""
    body: dict[str, Any] = {
        "v": 1,
        "change": change.type.value,
        "at": change.at.isoformat(),
        "actor": change.actor,
        "detail": change.detail,
        "incident": change.incident.model_dump(mode="json"),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class Dispatcher:
    """Queues deliveries inside the transaction of each incident change; sends them in a loop.

    ``attach(ops)`` makes every process that changes incidents (API, ingest, SLA loop) write
    the deliveries of a change in the change's own transaction: a change is committed with its
    deliveries or not at all. Any number of processes may run the loop (``run``): each claims a
    due delivery with a lease, so one try goes out once; changes of one incident reach a route
    in the order they were made (a delivery waits while an older one of its incident is pending).
    """

    def __init__(
        self,
        config: DispatchConfig,
        sessions: sessionmaker[Session],
        *,
        senders: Mapping[str, Sender] | None = None,
        clock: Callable[[], datetime] = utcnow,
        client_id: str | None = None,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.routes: dict[str, DispatchRoute] = {r.id: r for r in config.routes}
        self.senders: dict[str, Sender] = dict(senders or {})
        mqtt_id = client_id or dispatch_client_id()
        for route in config.routes:
            self.senders.setdefault(route.id, sender_for(route.target, mqtt_id))
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- queueing

    def attach(self, ops: IncidentNotifiable) -> None:
        """Queue the deliveries of every change *ops* commits, in its transaction."""
        ops.add_notifier(self.enqueue_in)
        ops.add_listener(self.on_change)

    def enqueue_in(self, session: Session, changes: Sequence[IncidentChange]) -> None:
        """``OpsService`` notifier: one delivery per (change, matching route), not committed."""
        now = self.clock()
        for change in changes:
            incident = change.incident
            matching = [
                r
                for r in self.config.routes
                if r.matches(incident.department, change.type, incident.severity)
            ]
            if not matching:
                continue
            payload = notice_payload(change).decode()
            for route in matching:
                session.add(
                    Delivery(
                        id=new_id(),
                        route_id=route.id,
                        target_type=route.target.type,
                        incident_id=incident.id,
                        department=incident.department,
                        change_type=change.type.value,
                        payload=payload,
                        status=DeliveryStatus.PENDING.value,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )

    async def on_change(self, change: IncidentChange) -> None:
        """``OpsService`` listener: a change was committed here; look for due deliveries now."""
        if any(
            r.matches(change.incident.department, change.type, change.incident.severity)
            for r in self.config.routes
        ):
            self.wake()

    def wake(self) -> None:
        """Look for due deliveries now (e.g. another process committed a change)."""
        self._wake.set()

    # ---------------------------------------------------------------- delivering

    def _claim_due(self) -> list[Delivery]:
        """Due deliveries, each claimed with a lease so no other loop or process sends it too.

        Only routes this process knows (another process's newer dispatch.yaml may have more),
        and per (route, incident) only the oldest pending delivery: changes arrive in order.
        """
        now = self.clock()
        claimed: list[Delivery] = []
        if not self.routes:
            return claimed
        older = aliased(Delivery)
        older_pending = (
            select(older.id)
            .where(older.route_id == Delivery.route_id)
            .where(older.incident_id == Delivery.incident_id)
            .where(older.status == DeliveryStatus.PENDING.value)
            .where(older.id < Delivery.id)
            .exists()
        )
        with self.sessions() as session:
            candidates = session.execute(
                select(Delivery.id, Delivery.route_id)
                .where(Delivery.status == DeliveryStatus.PENDING.value)
                .where(Delivery.next_attempt_at <= now)
                .where(Delivery.route_id.in_(sorted(self.routes)))
                .where(~older_pending)
                .order_by(Delivery.next_attempt_at)
                .limit(_BATCH)
            ).all()
            for delivery_id, route_id in candidates:
                lease = now + timedelta(seconds=lease_s(self.routes[route_id]))
                result = session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id)
                    .where(Delivery.status == DeliveryStatus.PENDING.value)
                    .where(Delivery.next_attempt_at <= now)
                    .values(next_attempt_at=lease)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(session.get_one(Delivery, delivery_id))
            session.commit()
        return claimed

    def _record(
        self, delivery_id: str, *, status: int | None, error: DeliveryError | None
    ) -> Delivery:
        now = self.clock()
        with self.sessions() as session:
            row = session.get_one(Delivery, delivery_id)
            row.attempts += 1
            row.updated_at = now
            row.last_status_code = status if error is None else error.status
            if error is None:
                row.status = DeliveryStatus.DELIVERED.value
                row.delivered_at = now
                row.last_error = None
            else:
                row.last_error = str(error)[:_MAX_ERROR_TEXT]
                if error.permanent or row.attempts >= self.config.max_attempts:
                    row.status = DeliveryStatus.DEAD.value
                else:
                    row.next_attempt_at = now + timedelta(
                        seconds=self.config.backoff_s(row.attempts)
                    )
            session.commit()
            return row

    async def _attempt(self, row: Delivery) -> None:
        sender = self.senders[row.route_id]
        status: int | None = None
        error: DeliveryError | None = None
        try:
            status = await sender.send(row.id, row.payload.encode())
        except DeliveryError as exc:
            error = exc
        done = await asyncio.to_thread(self._record, row.id, status=status, error=error)
        if error is None:
            logger.info("delivery %s to %s: delivered", row.id, row.route_id)
        elif done.status == DeliveryStatus.DEAD.value:
            logger.error(
                "delivery %s to %s: dead after %d tries: %s",
                row.id,
                row.route_id,
                done.attempts,
                error,
            )
        else:
            logger.warning(
                "delivery %s to %s: try %d failed (%s), next at %s",
                row.id,
                row.route_id,
                done.attempts,
                error,
                done.next_attempt_at.isoformat(),
            )

    async def deliver_due(self) -> int:
        """Try every delivery that is due once; returns how many were tried."""
        async with self._lock:
            rows = await asyncio.to_thread(self._claim_due)
            for row in rows:
                await self._attempt(row)
            return len(rows)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until *stop* is set (or the task is cancelled); nothing to do without routes."""
        stop = stop or asyncio.Event()
        if not self.routes:
            return
        while not stop.is_set():
            try:
                tried = await self.deliver_due()
            except Exception:
                logger.exception("dispatch loop failed; retrying")
                tried = 0
            if tried:  # more may be due: the next change of an incident waited for this one
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_s):
                    await _first(self._wake.wait(), stop.wait())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---------------------------------------------------------------- API views

    def list_deliveries(
        self,
        status: DeliveryStatus | None = None,
        incident_id: str | None = None,
        limit: int = 100,
        departments: Collection[str] | None = None,
    ) -> list[DeliveryOut]:
        """Newest first; only of *departments* when given."""
        with self.sessions() as session:
            query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
            if departments is not None:
                query = query.where(Delivery.department.in_(sorted(departments)))
            if status is not None:
                query = query.where(Delivery.status == status.value)
            if incident_id is not None:
                query = query.where(Delivery.incident_id == incident_id)
            return [DeliveryOut.of(row) for row in session.scalars(query)]

    def get(self, delivery_id: str) -> DeliveryOut | None:
        with self.sessions() as session:
            row = session.get(Delivery, delivery_id)
            return None if row is None else DeliveryOut.of(row)

    def retry(self, delivery_id: str) -> DeliveryOut | None:
        """Put a dead (or pending) delivery back in the queue with a fresh set of tries."""
        with self.sessions() as session:
            row = session.get(Delivery, delivery_id)
            if row is None:
                return None
            if row.status != DeliveryStatus.DELIVERED.value:
                row.status = DeliveryStatus.PENDING.value
                row.attempts = 0
                row.next_attempt_at = self.clock()
                row.updated_at = self.clock()
                session.commit()
            out = DeliveryOut.of(row)
        self._wake.set()
        return out
