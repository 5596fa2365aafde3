"""Nothing lost, for real: three units publish while the broker or an ingestor fails.

Each test runs the real uplinks (outbox, delivery contract 2), a real Mosquitto, the real
ingestor and InfluxDB, injects the fault while events flow, then counts ids: every id the units
accepted is in the store, none twice, and the cloud's hooks saw each one once.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.services.influxd import Influxd
from tests.cloud.ingest.conftest import eventually, run_ingestor
from tests.cloud.ingest.test_resilience import _start, _write_config
from tests.conftest import Broker
from tests.edge.uplink.fleet import Fleet, assert_exactly_once, ingest_settings

pytestmark = pytest.mark.services


@pytest.mark.parametrize("fault", [("restart", 3.0), ("restart", 20.0), ("kill -9", 3.0)], ids=str)
async def test_broker_fails_while_three_units_publish(
    fault: tuple[str, float],
    broker_factory: Callable[[], Broker],
    influxd: Influxd,
    influx_db: str,
    tmp_path: Path,
) -> None:
    how, down_s = fault
    broker = broker_factory()
    settings = ingest_settings(broker, influxd, influx_db, tmp_path, "broker-fault")
    async with run_ingestor(settings) as running:
        with Fleet(broker, tmp_path) as fleet:
            await asyncio.sleep(1.5)
            if how == "restart":
                await asyncio.to_thread(broker.server.stop)
            else:
                broker.server.kill()
            await asyncio.sleep(down_s)
            await asyncio.to_thread(broker.server.start)
            await asyncio.sleep(2.0)  # the units keep publishing while everyone reconnects
            published = fleet.stop_emitting()
            await asyncio.to_thread(fleet.wait_confirmed, 90)
            assert len(published) > 300
        assert_exactly_once(published, influxd, influx_db, running)


@pytest.mark.parametrize("how", ["clean leave", "gone, session expires"])
async def test_an_ingest_worker_leaving_for_good_strands_nothing(
    how: str,
    broker_factory: Callable[[], Broker],
    influxd: Influxd,
    influx_db: str,
    tmp_path: Path,
) -> None:
    broker = broker_factory()
    stays = ingest_settings(broker, influxd, influx_db, tmp_path, "stays")
    leaves = stays.model_copy(
        update={
            "mqtt": stays.mqtt.model_copy(update={"client_id": f"{stays.mqtt.client_id}-2"}),
            "ingest": stays.ingest.model_copy(
                update={"leave_on_stop": True}
                if how == "clean leave"
                else {"session_expiry_s": 4}  # a dead host: its session outlives it, bounded
            ),
        }
    )
    async with run_ingestor(stays) as first:
        with Fleet(broker, tmp_path) as fleet:
            async with run_ingestor(leaves) as second:
                await asyncio.sleep(2.0)
            await asyncio.sleep(2.0)  # publishing goes on with one worker left
            published = fleet.stop_emitting()
            await asyncio.to_thread(fleet.wait_confirmed, 60)
        assert second.ingestor.stats().stored_events > 0, "the second worker took no share"
        assert_exactly_once(published, influxd, influx_db, first, second)


async def test_the_ingestor_killed_while_three_units_publish(
    broker_factory: Callable[[], Broker], influxd: Influxd, influx_db: str, tmp_path: Path
) -> None:
    broker = broker_factory()
    settings = ingest_settings(broker, influxd, influx_db, tmp_path, "ingest-kill")
    config = tmp_path / "cloud.yaml"
    _write_config(settings, config)
    log = tmp_path / "ingest.log"

    async def subscribed(times: int) -> bool:
        text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
        return text.count("ingest subscribed") >= times

    proc = _start(config, log)
    try:
        await eventually(lambda: subscribed(1), 30, "the ingestor to subscribe")
        with Fleet(broker, tmp_path) as fleet:
            await asyncio.sleep(2.0)
            proc.kill()  # SIGKILL mid-stream: batches half stored, nothing confirmed for them
            await asyncio.to_thread(proc.wait, 10)
            await asyncio.sleep(1.0)
            proc = _start(config, log)
            await eventually(lambda: subscribed(2), 30, "the ingestor to come back")
            await asyncio.sleep(1.0)
            published = fleet.stop_emitting()
            await asyncio.to_thread(fleet.wait_confirmed, 60)
        assert_exactly_once(published, influxd, influx_db)
    finally:
        proc.terminate()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(proc.wait, 15)
    assert "Traceback" not in log.read_text()


def _connect_as(broker: Broker, port: int, user: str, client_id: str) -> int:
    """Connect as *user* asking for *client_id*; the CONNACK reason code (-1: none)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.username_pw_set(user, broker.users[user])
    result: list[int] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: result.append(int(rc.value))
    try:
        client.connect(broker.host, port)
    except OSError:
        return -1
    client.loop_start()
    deadline = time.monotonic() + 5
    while not result and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # long enough for a takeover to show
    client.disconnect()
    client.loop_stop()
    return result[0] if result else -1


async def test_a_device_cannot_take_over_another_devices_or_the_ingestors_client_id(
    broker_factory: Callable[[], Broker], influxd: Influxd, influx_db: str, tmp_path: Path
) -> None:
    broker = broker_factory()
    await asyncio.to_thread(broker.add_user, "dev-evil", "evil-pw")
    settings = ingest_settings(broker, influxd, influx_db, tmp_path, "takeover")
    ingest_id = settings.mqtt.client_id
    assert ingest_id is not None
    async with run_ingestor(settings) as running:
        with Fleet(broker, tmp_path) as fleet:
            await asyncio.sleep(1.0)
            for victim in (ingest_id, "dev-b", "cityops-ingest", "dev-a") * 3:
                rc = await asyncio.to_thread(_connect_as, broker, broker.port, "dev-evil", victim)
                assert rc == 0  # accepted, but as "dev-evil": its client id is its login
            # Where client ids are free (the service listener), a device cannot log in at all.
            rc = await asyncio.to_thread(
                _connect_as, broker, broker.service_port, "dev-evil", ingest_id
            )
            assert rc != 0
            published = fleet.stop_emitting()
            await asyncio.to_thread(fleet.wait_confirmed, 30)
            # Nobody was thrown off: one connection each for the whole test.
            assert [u.uplink.counters().connects for u in fleet.units] == [1, 1, 1]
        assert running.ingestor.stats().received >= len(published)
        assert running.ingestor._generation == 1
        assert_exactly_once(published, influxd, influx_db, running)
    log = broker.server.log()
    assert log.count(" as dev-evil ") == 12
    assert log.count(f" as {ingest_id} ") == 1  # the ingestor's own connection, and no other
