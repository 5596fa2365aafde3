"""Time-series stores for events and telemetry, behind one interface (``EventStore``)."""

from cloud.settings import StoreSettings
from cloud.store.base import EventStore


def build_store(settings: StoreSettings) -> EventStore:
    """The store *settings* ask for (not set up yet: call ``await store.setup()``)."""
    if settings.kind == "influx":
        from cloud.store.influx import InfluxEventStore

        return InfluxEventStore(settings.influx)
    from cloud.store.sqlite_ts import SqliteEventStore

    return SqliteEventStore(settings.sqlite_path)
