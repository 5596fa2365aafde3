"""Everything a request handler needs, built once by ``create_app`` and kept on ``app.state``."""

import hashlib
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.metrics import ApiMetrics
from cloud.api.mqtt import ApiMqtt
from cloud.api.settings import ApiSettings
from cloud.api.throttle import AuthThrottle
from cloud.ops.clock import Clock
from cloud.ops.devices import DeviceService
from cloud.ops.live import LiveHub
from cloud.ops.roles import Principal
from cloud.ops.service import OpsService
from cloud.runtime import CloudRuntime
from cloud.store.base import EventStore

AUTH_CACHE_TTL_S = 5.0
"""How long a verified key is trusted without a database look-up. On PostgreSQL, ``cloud keys
revoke`` also empties the cache of every API process at once (``NOTIFY cityops_keys``); on
SQLite a revocation takes at most this long to reach a running API."""


class KeyCache:
    """Verified API keys by SHA-256 of the token, each for ``AUTH_CACHE_TTL_S`` seconds."""

    def __init__(self, ttl_s: float = AUTH_CACHE_TTL_S, size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: dict[str, tuple[Principal, float]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> Principal | None:
        item = self._items.get(self._key(token))
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]

    def put(self, token: str, principal: Principal) -> None:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[self._key(token)] = (principal, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        self._items.clear()


@dataclass
class ApiContext:
    """The process's ``CloudRuntime`` (its parts read through, as routes use them), API parts."""

    settings: ApiSettings
    runtime: CloudRuntime
    metrics: ApiMetrics
    mqtt: ApiMqtt | None
    keys: KeyCache = field(default_factory=KeyCache)
    auth_throttle: AuthThrottle = field(default_factory=AuthThrottle)

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.runtime.sessions

    @property
    def store(self) -> EventStore:
        return self.runtime.store

    @property
    def ops(self) -> OpsService:
        return self.runtime.ops

    @property
    def devices(self) -> DeviceService:
        return self.runtime.devices

    @property
    def live(self) -> LiveHub:
        return self.runtime.live

    @property
    def clock(self) -> Clock:
        return self.runtime.clock
