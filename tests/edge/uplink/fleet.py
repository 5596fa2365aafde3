"""Three camera units publishing while a fault happens, and the id count at the end.

``Fleet`` runs the real uplink (outbox, delivery contract 2) for ``dev-a``, ``dev-b`` and
``dev-c``, each emitting events from its own thread at a steady rate; ``stored_ids`` reads back
what InfluxDB holds. The fault tests compare the two sets: every id published is stored, and
none twice.
"""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from cloud.services.influxd import Influxd
from cloud.settings import CloudSettings, InfluxSettings, StoreSettings
from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from edge.uplink.settings import UplinkSettings
from tests.cloud.ingest.conftest import Running, make_settings
from tests.conftest import DEVICES, Broker
from tests.edge.uplink.helpers import make_event, uplink_settings


@dataclass
class Unit:
    uplink: MqttUplink
    emitted: list[str] = field(default_factory=list)


class Fleet:
    """Three units, each emitting *rate* events/s until ``stop_emitting``."""

    def __init__(self, broker: Broker, workdir: Path, rate: float = 40.0, **extra: object) -> None:
        self.rate = rate
        self.units: list[Unit] = []
        for device in DEVICES:
            settings: UplinkSettings = uplink_settings(
                broker,
                device,
                workdir / f"{device}.outbox",
                delivery="stored",
                confirm_timeout_s=3.0,
                **extra,
            )
            self.units.append(Unit(MqttUplink(settings, device, Outbox(settings.outbox))))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        for unit in self.units:
            unit.uplink.start()
        for unit in self.units:
            assert unit.uplink.wait_connected(10), "a unit did not connect"
        for unit in self.units:
            thread = threading.Thread(target=self._emit, args=(unit,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _emit(self, unit: Unit) -> None:
        device = unit.uplink.device_id
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            event = make_event(device)
            unit.uplink.emit(event)
            unit.emitted.append(event.id)
            n += 1
            ahead = start + n / self.rate - time.monotonic()
            if ahead > 0:
                self._stop.wait(ahead)

    def stop_emitting(self) -> set[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        return {i for unit in self.units for i in unit.emitted}

    def wait_confirmed(self, timeout: float) -> None:
        """Until every outbox is empty: the cloud confirmed every event as stored."""
        deadline = time.monotonic() + timeout
        for unit in self.units:
            left = max(0.1, deadline - time.monotonic())
            assert unit.uplink.wait_drained(left), (
                f"{unit.uplink.device_id}: {unit.uplink.outbox.depth} event(s) never confirmed"
            )

    def resent(self) -> int:
        return sum(unit.uplink.counters().resent for unit in self.units)

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for unit in self.units:
            unit.uplink.stop()
            unit.uplink.outbox.close()


def influx_ids(server: Influxd, database: str) -> Counter[str]:
    """Every event id in the store, with how often it is there."""
    data = server.query('SELECT "id" FROM "events"', db=database)
    results = data["results"]
    assert isinstance(results, list)
    series = results[0].get("series") or []
    return Counter(str(row[1]) for s in series for row in s["values"])


def ingest_settings(
    broker: Broker, influxd: Influxd, database: str, tmp_path: Path, name: str, **ingest: object
) -> CloudSettings:
    store = StoreSettings(kind="influx", influx=InfluxSettings(url=influxd.url, database=database))
    # The production back-off (0.5 s doubling), capped low only to keep the test short.
    options: dict[str, object] = {"retry_initial_s": 0.5, "retry_max_s": 4.0, **ingest}
    return make_settings(broker, store, tmp_path, name, **options)


def assert_exactly_once(
    published: set[str], influxd: Influxd, database: str, *running: Running
) -> None:
    stored = influx_ids(influxd, database)
    lost = published - set(stored)
    assert not lost, f"{len(lost)} of {len(published)} published events lost"
    assert set(stored) == published, "the store holds events nobody published"
    assert max(stored.values()) == 1, "an event is stored twice"
    if running:
        hooked = Counter(e.id for r in running for batch in r.hooked for e in batch)
        assert set(hooked) == published
        assert max(hooked.values()) == 1, "the cloud handled an event twice"
