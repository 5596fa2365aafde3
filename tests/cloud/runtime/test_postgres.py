"""Several cloud processes on one PostgreSQL: one incident per situation, SLA once, fan-out."""

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cloud.db.base import make_engine
from cloud.db.ops import AuditEntry, Incident
from cloud.ops.clock import ManualClock
from cloud.ops.live import LiveFilter, LiveType
from cloud.ops.models import IncidentChange
from cloud.ops.roles import Principal, Role
from cloud.runtime import CloudRuntime, build_runtime
from cloud.runtime.postgres import ClientIdLease, Leadership, PgFanout, notify_keys_changed
from cloud.settings import CloudSettings
from shared.clock import utcnow
from tests.cloud.integrations.waits import eventually
from tests.cloud.ops.builders import event

Runtimes = Callable[[ManualClock | None], CloudRuntime]


@pytest.fixture
def runtimes(postgres_db: str) -> Iterator[Runtimes]:
    """Builds runtimes as separate processes would: own engine, ops service and hub each."""
    built: list[CloudRuntime] = []

    def make(clock: ManualClock | None = None) -> CloudRuntime:
        runtime = build_runtime(CloudSettings(database_url=postgres_db), clock=clock)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.engine.dispose()


def _count(runtime: CloudRuntime, stmt: object) -> int:
    with Session(runtime.engine) as session:
        return int(session.scalar(stmt) or 0)  # type: ignore[call-overload]


def test_two_processes_with_one_situation_open_one_incident(runtimes: Runtimes) -> None:
    one, two = runtimes(None), runtimes(None)
    assert isinstance(one.fanout, PgFanout)
    rounds = 12
    for n in range(rounds):
        # Every round is a new situation (its own track) reached by both at the same moment.
        barrier = threading.Barrier(2)
        first, second = event(track_id=100 + n), event(track_id=100 + n)

        def apply(runtime: CloudRuntime, e: object, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            runtime.ops.apply_events([e])  # type: ignore[list-item]

        threads = [
            threading.Thread(target=apply, args=(one, first)),
            threading.Thread(target=apply, args=(two, second)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert _count(one, select(func.count()).select_from(Incident)) == rounds
    assert _count(one, select(func.sum(Incident.event_count))) == 2 * rounds


async def test_sla_escalates_once_across_processes(runtimes: Runtimes) -> None:
    start = utcnow()
    clocks = [ManualClock(start), ManualClock(start)]
    one, two = runtimes(clocks[0]), runtimes(clocks[1])
    await one.ops.on_events([event(track_id=n) for n in range(5)])  # ack due in 2 min
    for clock in clocks:
        clock.advance(timedelta(minutes=3))
    for _ in range(3):  # both API processes check, at once, repeatedly
        await asyncio.gather(one.ops.check_sla(), two.ops.check_sla())
    breaches = select(func.count()).where(AuditEntry.action == "incident.sla_breached")
    assert _count(one, breaches) == 5
    assert _count(one, select(func.sum(Incident.escalation_level))) == 5


def test_a_second_process_with_the_same_client_id_is_refused(runtimes: Runtimes) -> None:
    runtime = runtimes(None)
    with ClientIdLease(runtime.engine, "ingest-a") as first:
        assert first.acquire()
        assert not ClientIdLease(runtime.engine, "ingest-a").acquire()
        other = ClientIdLease(runtime.engine, "ingest-a-i1")
        assert other.acquire()
        other.release()
    again = ClientIdLease(runtime.engine, "ingest-a")
    assert again.acquire()  # released with its process
    again.release()


async def test_changes_reach_the_live_hub_of_every_other_process(runtimes: Runtimes) -> None:
    ingest, api = runtimes(None), runtimes(None)
    cleared: list[int] = []
    listener = api.listen(lambda: cleared.append(1))
    assert listener is not None
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        sub = api.live.subscribe(Principal("k1", "ops", Role.ADMIN, frozenset({"*"})), LiveFilter())
        opened = event()
        await ingest.ops.on_events([opened])
        await ingest.fanout.publish_events([opened])
        with Session(ingest.engine) as session:
            notify_keys_changed(session)
        got = [await asyncio.wait_for(sub.queue.get(), 10) for _ in range(2)]
        assert [m.type for m in got] == [LiveType.INCIDENT, LiveType.EVENT]
        change = IncidentChange.model_validate(got[0].data)
        assert change.detail["event_id"] == opened.id
        assert got[1].data["id"] == opened.id
        await asyncio.sleep(0.3)
        assert len(cleared) >= 2  # once on listening, once for the revocation
        assert ingest.live.published == 0  # on PostgreSQL everything goes through NOTIFY
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_one_process_of_many_runs_the_connectors_and_another_takes_over(
    postgres_db: str,
) -> None:
    """Three would-be leaders on one PostgreSQL: one leads; its session dies, another leads."""
    engines = [make_engine(postgres_db) for _ in range(3)]
    leaders = [Leadership(e, "connectors-test", retry_s=0.1) for e in engines]
    stops = [asyncio.Event() for _ in leaders]
    running: list[int] = []
    overlap = 0

    def job(n: int) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
        async def start() -> None:
            nonlocal overlap
            running.append(n)
            overlap = max(overlap, len(running))

        async def end() -> None:
            running.remove(n)

        return start, end

    tasks = [
        asyncio.create_task(leader.run(stop, *job(n)))
        for n, (leader, stop) in enumerate(zip(leaders, stops, strict=True))
    ]
    try:
        await eventually(lambda: len(running) == 1)
        await asyncio.sleep(0.5)  # five more tries by the others: still one leader
        [first] = running
        assert sum(leader.leading.is_set() for leader in leaders) == 1
        # The leader's database session is killed (a crashed host, a failover).
        pid = leaders[first].backend_pid
        with engines[0].connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        await eventually(
            lambda: (len(running) == 1 and running[0] != first) or first not in running
        )
        await eventually(lambda: len(running) == 1)
        # A clean stop hands over too.
        [second] = running
        stops[second].set()
        await tasks[second]
        await eventually(lambda: len(running) == 1 and running[0] != second)
        assert overlap == 1  # never two at once (the dead one stopped within retry_s)
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        for engine in engines:
            engine.dispose()
    assert running == []
