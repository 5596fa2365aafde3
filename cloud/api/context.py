"""Everything a request handler needs, built once by ``create_app`` and kept on ``app.state``."""

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.metrics import ApiMetrics
from cloud.api.mqtt import ApiMqtt
from cloud.api.settings import ApiSettings
from cloud.ops.clock import Clock
from cloud.ops.live import LiveHub
from cloud.ops.service import OpsService
from cloud.store.base import EventStore


@dataclass
class ApiContext:
    settings: ApiSettings
    engine: Engine
    sessions: sessionmaker[Session]
    store: EventStore
    ops: OpsService
    live: LiveHub
    metrics: ApiMetrics
    mqtt: ApiMqtt | None
    clock: Clock
