"""Batch N+1 is gathered while batch N is stored, but never stored or acknowledged before it."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

from cloud.db.base import make_engine
from cloud.ingest.service import Ingestor
from cloud.settings import StoreSettings
from cloud.store import build_store
from cloud.store.base import EventQuery
from shared.events import Event
from shared.topics import Channel
from tests.cloud.ingest.conftest import eventually, make_settings
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.store.factories import make_event
from tests.conftest import Broker

BATCH = 50


async def test_the_next_batch_waits_for_the_batch_being_stored(
    mosquitto: Broker, store_settings: StoreSettings, tmp_path: Path
) -> None:
    settings = make_settings(
        mosquitto, store_settings, tmp_path, "pipeline", batch_size=BATCH, batch_interval_s=5.0
    )
    store = build_store(settings.store)
    engine = make_engine(settings.database_url)
    ingestor = Ingestor(settings, store, engine)
    first_held = asyncio.Event()
    release = asyncio.Event()
    hooked: list[list[str]] = []

    async def hold_first(events: Sequence[Event]) -> None:
        hooked.append([e.id for e in events])
        if len(hooked) == 1:
            first_held.set()
            await release.wait()

    async def stored() -> int:
        return sum(c.count for c in await store.count_events(EventQuery(), "device_id"))

    ingestor.add_hook(hold_first)
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    events = [make_event("dev-a", zone_id=f"z{i % 3}") for i in range(3 * BATCH)]
    try:
        await asyncio.wait_for(ingestor.connected.wait(), 15)
        with Publisher(mosquitto.host, mosquitto.port, "cityops-admin", "admin-pw") as pub:
            for e in events[:BATCH]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
            await asyncio.wait_for(first_held.wait(), 15)
            for e in events[BATCH:]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
        await asyncio.sleep(1.0)  # time enough to gather (and, if it were wrong, store) more
        # The first batch (events, plus any retained presence) is stored, nothing after it.
        assert len(hooked) == 1
        assert await stored() == len(hooked[0]) > 0
        assert ingestor.stats().stored_events == 0  # not acknowledged while its hook runs
        release.set()

        async def all_acknowledged() -> bool:
            return ingestor.stats().stored_events == 3 * BATCH

        await eventually(all_acknowledged, 15, "every batch stored and acknowledged")
        assert await stored() == 3 * BATCH
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, 15)
        await store.close()
        engine.dispose()
    assert sorted(i for ids in hooked for i in ids) == sorted(e.id for e in events)
    assert hooked[0] == [e.id for e in events[: len(hooked[0])]]
