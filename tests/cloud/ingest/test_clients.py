"""Both MQTT clients of the ingestor (``ingest.client``: wire, aiomqtt) keep the same promises.

The rest of the ingest suite runs on the default client (wire); these run on both.
"""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cloud.settings import StoreSettings
from shared.topics import Channel
from tests.cloud.ingest.conftest import eventually, make_settings, run_ingestor
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.store.factories import make_event
from tests.conftest import Broker

CLIENTS = ["wire", "aiomqtt"]


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def sqlite_store(tmp_path: Path) -> StoreSettings:
    return StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite")


async def test_stored_once_acknowledged_and_bad_input_refused(
    mosquitto: Broker, tmp_path: Path, client: str
) -> None:
    settings = make_settings(
        mosquitto, sqlite_store(tmp_path), tmp_path, f"both-{client}", client=client
    )
    events = [make_event("dev-a") for _ in range(600)]
    async with run_ingestor(settings) as running:
        with Publisher(mosquitto.host, mosquitto.service_port, "cityops-admin", "admin-pw") as pub:
            for e in events + events[:100]:  # 100 duplicates
                pub.send(e, Channel.EVENT)
            pub.raw("cityops/v1/dev-a/event", b"{not json")
            await asyncio.to_thread(pub.flush)
        await running.wait_stored(600)

        async def all_seen() -> bool:
            return running.ingestor.stats().received >= 701

        await eventually(all_seen, 15, "every message")
        stats = running.ingestor.stats()
        assert await running.stored() == 600
        assert stats.rejected.get("invalid_json") == 1
        assert sorted(e.id for b in running.hooked for e in b) == sorted(e.id for e in events)
    async with run_ingestor(settings) as again:
        await asyncio.sleep(1.0)  # anything unacknowledged would be redelivered by now
        assert again.ingestor.stats().received == 0


async def test_a_broker_restart_mid_stream_loses_nothing(
    broker_factory: Callable[[], Broker], tmp_path: Path, client: str
) -> None:
    broker = broker_factory()
    settings = make_settings(
        broker, sqlite_store(tmp_path), tmp_path, f"restart-{client}", client=client
    )
    events = [make_event("dev-b") for _ in range(1000)]
    async with run_ingestor(settings) as running:
        with Publisher(broker.host, broker.service_port, "cityops-admin", "admin-pw") as pub:
            for e in events[:500]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
        await running.wait_stored(500)
        await asyncio.to_thread(broker.server.stop)
        await eventually(_not_set(running.ingestor.connected), 15, "the ingestor to notice")
        await asyncio.to_thread(broker.server.start)
        await asyncio.wait_for(running.ingestor.connected.wait(), 30)
        with Publisher(broker.host, broker.service_port, "cityops-admin", "admin-pw") as pub:
            for e in events[500:]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
        await running.wait_stored(1000, within_s=30)
        await asyncio.sleep(0.5)
        assert await running.stored() == 1000


def _not_set(flag: asyncio.Event) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not flag.is_set()

    return check
