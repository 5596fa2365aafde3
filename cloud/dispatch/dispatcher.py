"""The dispatcher: listens to incident changes, queues deliveries, sends them with retries.

Deliveries are rows in ``dispatch_deliveries`` (an outbox), so a restart loses none and the
dead letters stay visible in the API until someone retries them.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.dispatch.config import DispatchConfig, DispatchRoute
from cloud.dispatch.senders import DeliveryError, Sender, sender_for
from cloud.dispatch.tables import Delivery, DeliveryStatus, create_tables
from cloud.ops.models import IncidentChange
from shared.clock import utcnow
from shared.ids import new_id

logger = logging.getLogger(__name__)
_MAX_ERROR_TEXT = 500
_BATCH = 50
_LEASE_S = 120.0
"""A claimed delivery is not picked again for this long (longer than any send timeout)."""


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
    def __init__(
        self,
        config: DispatchConfig,
        sessions: sessionmaker[Session],
        *,
        senders: Mapping[str, Sender] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.routes: dict[str, DispatchRoute] = {r.id: r for r in config.routes}
        self.senders: dict[str, Sender] = dict(senders or {})
        for route in config.routes:
            self.senders.setdefault(route.id, sender_for(route.target))
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def setup(cls, engine: Engine, config: DispatchConfig, **kwargs: Any) -> "Dispatcher":
        create_tables(engine)
        return cls(config, sessionmaker(engine, expire_on_commit=False), **kwargs)

    # ---------------------------------------------------------------- queueing

    def enqueue(self, change: IncidentChange) -> list[str]:
        """Queue one delivery per matching route; returns their ids."""
        incident = change.incident
        matching = [
            r
            for r in self.config.routes
            if r.matches(incident.department, change.type, incident.severity)
        ]
        if not matching:
            return []
        payload = notice_payload(change).decode()
        now = self.clock()
        ids: list[str] = []
        with self.sessions() as session:
            for route in matching:
                row = Delivery(
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
                session.add(row)
                ids.append(row.id)
            session.commit()
        return ids

    async def on_change(self, change: IncidentChange) -> None:
        """``OpsService`` listener: queue now, deliver in the background."""
        ids = await asyncio.to_thread(self.enqueue, change)
        if ids:
            logger.info(
                "incident %s %s: %d deliveries queued", change.incident.id, change.type, len(ids)
            )
            self._wake.set()

    # ---------------------------------------------------------------- delivering

    def _claim_due(self) -> list[Delivery]:
        """Due deliveries, each claimed with a lease so no other loop or process sends it too."""
        now = self.clock()
        lease = now + timedelta(seconds=_LEASE_S)
        claimed: list[Delivery] = []
        with self.sessions() as session:
            candidates = session.scalars(
                select(Delivery.id)
                .where(Delivery.status == DeliveryStatus.PENDING.value)
                .where(Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at)
                .limit(_BATCH)
            ).all()
            for delivery_id in candidates:
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
        sender = self.senders.get(row.route_id)
        error: DeliveryError | None
        status: int | None = None
        if sender is None:
            error = DeliveryError(f"route {row.route_id} is no longer configured", permanent=True)
        else:
            try:
                status = await sender.send(row.id, row.payload.encode())
                error = None
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

    async def run(self) -> None:
        while True:
            try:
                tried = await self.deliver_due()
            except Exception:
                logger.exception("dispatch loop failed; retrying")
                tried = 0
            if tried >= _BATCH:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_s):
                    await self._wake.wait()

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
