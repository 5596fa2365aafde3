"""The connector hub: one ``Intake`` per configured source, and the tasks that feed them."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from cloud.connectors.config import (
    FileDropSource,
    MqttBridgeSource,
    NgsiLdSource,
    RestPollSource,
    Source,
    SourcesConfig,
    WebhookSource,
    secret_from_env,
)
from cloud.connectors.file_drop import FileDrop
from cloud.connectors.guard import ReplayCache, TokenBucket
from cloud.connectors.health import SourceHealthOut
from cloud.connectors.intake import Intake
from cloud.connectors.mqtt_bridge import MqttBridge
from cloud.connectors.poller import RestPoller
from cloud.connectors.writer import EventWriter

logger = logging.getLogger(__name__)


class Runner(Protocol):
    """A background connector (poller, bridge, file watcher) that runs until cancelled."""

    async def run(self) -> None: ...


@dataclass
class InboundGuard:
    """What an inbound HTTP source (webhook, NGSI-LD notify) checks before taking a request."""

    secret: SecretStr
    bucket: TokenBucket
    replays: ReplayCache


def _report_end(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("connector task %s stopped: %r", task.get_name(), task.exception())


class ConnectorHub:
    def __init__(self, config: SourcesConfig, writer: EventWriter) -> None:
        self.config = config
        self.writer = writer
        self.intakes: dict[str, Intake] = {}
        self.guards: dict[str, InboundGuard] = {}
        self._tasks: list[asyncio.Task[None]] = []
        for source in config.sources:
            if not source.enabled:
                continue
            self.intakes[source.id] = Intake(source, writer)
            if isinstance(source, WebhookSource | NgsiLdSource):
                secret = secret_from_env(source.secret_env, f"sources.{source.id}.secret_env")
                if secret is None:  # pragma: no cover - secret_env is a required field
                    raise ValueError(f"sources.{source.id}.secret_env: required")
                window = source.replay_window_s if isinstance(source, WebhookSource) else 300.0
                self.guards[source.id] = InboundGuard(
                    secret=secret,
                    bucket=TokenBucket(source.rate_per_s, source.burst),
                    replays=ReplayCache(window),
                )

    def source(self, source_id: str) -> Source | None:
        intake = self.intakes.get(source_id)
        return None if intake is None else intake.source

    def health(self) -> list[SourceHealthOut]:
        return [intake.health.snapshot() for intake in self.intakes.values()]

    def runner_for(self, intake: Intake) -> Runner | None:
        source = intake.source
        if isinstance(source, RestPollSource):
            return RestPoller(source, intake)
        if isinstance(source, MqttBridgeSource):
            return MqttBridge(source, intake)
        if isinstance(source, FileDropSource):
            return FileDrop(source, intake)
        return None

    @property
    def pulling(self) -> bool:
        """True when a source is pulled by this side (polled, bridged, watched)."""
        return any(self.runner_for(intake) is not None for intake in self.intakes.values())

    async def start(self) -> None:
        """Start every pulling connector; inbound ones (webhook, NGSI-LD) are served by routes."""
        for intake in self.intakes.values():
            runner = self.runner_for(intake)
            if runner is not None:
                task = asyncio.create_task(runner.run(), name=f"connector-{intake.source.id}")
                task.add_done_callback(_report_end)
                self._tasks.append(task)
        logger.info("connector hub started %d background sources", len(self._tasks))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
