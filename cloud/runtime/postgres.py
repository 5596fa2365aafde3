"""What several cloud processes share through PostgreSQL: live fan-out, key revocations, leases.

Fan-out is PostgreSQL ``LISTEN``/``NOTIFY`` (docs/scale-out.md says why): every process that
stores an event or changes an incident notifies ``cityops_live`` with the live message, and
every API process listens and hands it to its own ``LiveHub``. ``cloud keys revoke`` notifies
``cityops_keys`` and every API process empties its key cache.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self

import psycopg
from pydantic import ValidationError
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cloud.ops.live import LiveMessage, LiveType, event_message, incident_message
from cloud.ops.models import IncidentChange
from shared.events import Event

logger = logging.getLogger(__name__)

LIVE_CHANNEL = "cityops_live"
KEYS_CHANNEL = "cityops_keys"
NOTIFY_MAX_BYTES = 7900
"""PostgreSQL refuses a NOTIFY payload of 8000 bytes or more."""
_NOTIFY_ALL = text(
    "SELECT count(pg_notify(:channel, p)) FROM unnest(CAST(:payloads AS text[])) AS p"
)
_RECONNECT_MAX_S = 10.0


def on_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def conninfo(engine: Engine) -> str:
    """The engine's URL as a libpq URI (for psycopg connections outside the pool)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _fit(message: LiveMessage) -> str | None:
    """The JSON of *message*, its long lists cut so it fits in one NOTIFY (None: it cannot)."""
    payload = message.model_dump_json()
    if len(payload.encode()) <= NOTIFY_MAX_BYTES:
        return payload
    data = json.loads(payload)
    inner = data["data"].get("incident", data["data"])
    for key in ("notes", "checklist", "objects", "attributes"):
        if key in inner:
            inner[key] = []
    data["data"]["truncated"] = True
    cut = json.dumps(data)
    if len(cut.encode()) <= NOTIFY_MAX_BYTES:
        return cut
    logger.warning("live message of %s too large to fan out; dropped", message.device_id)
    return None


class PgFanout:
    """Announces stored events and incident changes to every process (``NOTIFY``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def notify(self, channel: str, payloads: Sequence[str | None]) -> None:
        payloads = [p for p in payloads if p is not None]
        if not payloads:
            return
        with self.engine.begin() as conn:
            conn.execute(_NOTIFY_ALL, {"channel": channel, "payloads": list(payloads)})

    async def publish_events(self, events: Sequence[Event]) -> None:
        """``EventHook``: one notification per event (departments are added by the receiver)."""
        payloads = [_fit(event_message(e, None)) for e in events]
        await asyncio.to_thread(self.notify, LIVE_CHANNEL, payloads)

    async def publish_incident(self, change: IncidentChange) -> None:
        """Announce *change* on its own (the ops service uses ``notify_in`` instead)."""
        await asyncio.to_thread(self.notify, LIVE_CHANNEL, [_fit(incident_message(change))])

    @staticmethod
    def notify_in(session: Session, changes: Sequence[IncidentChange]) -> None:
        """``OpsService`` notifier: NOTIFY inside the changes' own transaction.

        They are announced if and only if they are committed (a crash in between loses none).
        """
        payloads = [p for p in (_fit(incident_message(c)) for c in changes) if p is not None]
        if payloads:
            session.execute(_NOTIFY_ALL, {"channel": LIVE_CHANNEL, "payloads": payloads})


def notify_keys_changed(session: Session) -> None:
    """Tell every API process to forget the API keys it has verified (after a revocation)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, 'revoked')"), {"c": KEYS_CHANNEL})
        session.commit()


class PgListener:
    """Receives ``cityops_live`` and ``cityops_keys`` in one API process, reconnecting."""

    def __init__(
        self,
        engine: Engine,
        on_live: Callable[[LiveMessage], None],
        on_keys: Callable[[], None],
    ) -> None:
        self.conninfo = conninfo(engine)
        self.on_live = on_live
        self.on_keys = on_keys
        self.listening = asyncio.Event()
        self.received = 0

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {LIVE_CHANNEL}")
                    await conn.execute(f"LISTEN {KEYS_CHANNEL}")
                    self.on_keys()  # revocations missed while disconnected: start over
                    self.listening.set()
                    logger.info("live fan-out: listening on PostgreSQL (%s)", LIVE_CHANNEL)
                    delay = 0.5
                    while not stop.is_set():
                        async for note in conn.notifies(timeout=1.0):
                            self._handle(note.channel, note.payload)
            except psycopg.Error as exc:
                logger.warning("live fan-out: %s; listening again in %.1f s", exc, delay)
            finally:
                self.listening.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)

    def _handle(self, channel: str, payload: str) -> None:
        self.received += 1
        if channel == KEYS_CHANNEL:
            self.on_keys()
            return
        try:
            message = LiveMessage.model_validate_json(payload)
        except ValidationError as exc:
            logger.warning("live fan-out: unreadable message dropped: %s", exc)
            return
        self.on_live(message)


class ClientIdLease:
    """Holds a PostgreSQL session lock on an MQTT client id for the life of the process.

    A second process configured with the same client id would take the first one's persistent
    session over (its unacknowledged messages then go wherever the broker's takeover sends
    them); it is refused at start instead.
    """

    def __init__(self, engine: Engine, client_id: str) -> None:
        self.engine = engine
        self.client_id = client_id
        self._conn: psycopg.Connection | None = None

    def acquire(self) -> bool:
        """True if this process now holds the id (always true off PostgreSQL)."""
        if not on_postgres(self.engine):
            return True
        conn = psycopg.connect(conninfo(self.engine), autocommit=True)
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 1))", ("mqtt:" + self.client_id,)
        ).fetchone()
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class Leadership:
    """Runs a job in one process of many: the one holding a PostgreSQL session lock on *name*.

    Pulling connectors (REST pollers, MQTT bridges, file drops) must run once, not once per
    ``cloud serve --workers`` process. Every process calls ``run``: the lock holder starts the
    job; the others try again every ``retry_s`` and take over when the holder's connection
    ends, since the lock goes with it. The holder checks its connection every ``retry_s`` and
    ends the job as soon as it is lost; a new holder waits twice that long before it starts, so
    the two never run the job at once. Off PostgreSQL there is one process: it always leads.
    """

    def __init__(self, engine: Engine, name: str, *, retry_s: float = 5.0) -> None:
        self.engine = engine
        self.name = name
        self.retry_s = retry_s
        self.leading = asyncio.Event()
        self.backend_pid: int | None = None
        """The PostgreSQL backend holding the lock while this process leads."""

    async def run(
        self,
        stop: asyncio.Event,
        start: Callable[[], Awaitable[None]],
        end: Callable[[], Awaitable[None]],
    ) -> None:
        """Until *stop*: ``start()`` on becoming the leader, ``end()`` on ceasing to be."""
        if not on_postgres(self.engine):
            await self._lead(stop, start, end, None)
            return
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo(self.engine), autocommit=True)
                async with conn:
                    cursor = await conn.execute(
                        "SELECT pg_try_advisory_lock(hashtextextended(%s, 2))",
                        ("lead:" + self.name,),
                    )
                    row = await cursor.fetchone()
                    if row and row[0]:
                        await self._lead(stop, start, end, conn)
            except psycopg.Error as exc:
                logger.warning("%s: leadership lost or not reachable: %s", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_s)

    async def _lead(
        self,
        stop: asyncio.Event,
        start: Callable[[], Awaitable[None]],
        end: Callable[[], Awaitable[None]],
        conn: psycopg.AsyncConnection[tuple[object, ...]] | None,
    ) -> None:
        self.backend_pid = conn.info.backend_pid if conn is not None else None
        if conn is not None:  # the last holder may not know yet that it lost the lock
            for _ in range(2):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry_s)
                await conn.execute("SELECT 1")
            if stop.is_set():
                return
        logger.info("%s: this process leads", self.name)
        self.leading.set()
        await start()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry_s)
                if conn is not None and not stop.is_set():
                    await conn.execute("SELECT 1")  # raises once the session (and lock) is gone
        finally:
            self.leading.clear()
            self.backend_pid = None
            await end()
            logger.info("%s: this process no longer leads", self.name)


def with_department(message: LiveMessage, departments: dict[str, str | None]) -> LiveMessage:
    """Event messages arrive without a department: the receiving API knows the device's."""
    if message.type is LiveType.EVENT and message.department is None:
        return message.model_copy(update={"department": departments.get(message.device_id)})
    return message
