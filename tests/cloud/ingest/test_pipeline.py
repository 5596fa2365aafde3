"""Batches overlap but are hooked and acknowledged in order, never more in flight than the limit.

Up to ``max_batches_in_flight`` batches are stored at once while the next one is gathered.
"""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_later_batches_wait_for_the_hooks_of_the_batch_before(
    mosquitto: Broker, store_settings: StoreSettings, tmp_path: Path, in_flight: int
) -> None:
    settings = make_settings(
        mosquitto,
        store_settings,
        tmp_path,
        f"pipeline-{in_flight}",
        batch_size=BATCH,
        batch_interval_s=5.0,
        max_batches_in_flight=in_flight,
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
        with Publisher(mosquitto.host, mosquitto.service_port, "cityops-admin", "admin-pw") as pub:
            for e in events[:BATCH]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
            await asyncio.wait_for(first_held.wait(), 15)
            for e in events[BATCH:]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
        await asyncio.sleep(1.0)  # time enough to gather (and, if it were wrong, store) more
        # Only the first batch is hooked; the batches in flight behind it may be stored (one
        # with a limit of 1: the held one; two with 2) but neither hooked nor acknowledged, and
        # the third waits to be stored until a place is free.
        assert len(hooked) == 1
        first = len(hooked[0])
        assert first > 0
        assert await stored() == first + (in_flight - 1) * BATCH
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
