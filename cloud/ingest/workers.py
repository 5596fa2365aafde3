"""``cityops cloud ingest --workers N``: N ingestor processes in one share group, supervised.

One Python process validates and stores on one core; the broker splits a shared subscription
between its members, so the way to use more cores is more processes. Each worker is a full
ingestor with its own MQTT client id (``mqtt_client_id``: ``<client_id>-<n>``, so each has
its own persistent session) and, with ``--metrics-port P``, its own metrics endpoint on
``P + n``. The supervisor restarts a worker that dies (with backoff) and, on SIGINT/SIGTERM,
stops them all and waits.
"""

import asyncio
import logging
import multiprocessing as mp
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

from cloud.ingest.runner import configure_logging, run_ingest, with_instance
from cloud.settings import CloudSettings

log = logging.getLogger(__name__)

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
STOP_WAIT_S = 30.0


class WorkersRefusedError(ValueError):
    """The settings cannot be split over several processes (the reason names the setting)."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What one worker process runs (sent to a spawned process)."""

    index: int
    settings: CloudSettings
    metrics_host: str
    metrics_port: int | None
    log_level: str


def worker_specs(
    settings: CloudSettings,
    workers: int,
    metrics_host: str,
    metrics_port: int | None,
    log_level: str,
    *,
    instance: int | None = None,
) -> list[WorkerSpec]:
    """One spec per worker: own client id and metrics port; refuse what cannot be shared."""
    if settings.store.kind == "sqlite":
        raise WorkersRefusedError(
            "store.kind: the embedded SQLite store takes one writer process; "
            "use store.kind: influx to run several workers"
        )
    return [
        WorkerSpec(
            index=n,
            settings=with_instance(settings, instance, n),
            metrics_host=metrics_host,
            metrics_port=None if metrics_port is None else metrics_port + n,
            log_level=log_level,
        )
        for n in range(workers)
    ]


def _worker_main(spec: WorkerSpec) -> None:
    configure_logging(spec.log_level, prefix=f"worker-{spec.index} ")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: parent decides
    asyncio.run(run_ingest(spec.settings, spec.metrics_host, spec.metrics_port))


@dataclass(slots=True)
class _Slot:
    spec: WorkerSpec
    process: BaseProcess
    started: float
    restart_delay: float = RESTART_MIN_S


class Supervisor:
    """Starts the workers, restarts the ones that die, stops them all on request."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        self._ctx = mp.get_context("spawn")
        self._specs = specs
        self._slots: list[_Slot] = []
        self._stop = threading.Event()

    def stop(self, signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        log.info("stopping %d workers (signal %d)", len(self._slots), signum)
        self._stop.set()

    def run(self) -> int:
        """Run until stopped; return the exit code (0 when every worker stopped cleanly)."""
        self._slots = [self._start(spec) for spec in self._specs]
        while not self._stop.wait(0.2):
            for i, slot in enumerate(self._slots):
                if slot.process.is_alive():
                    continue
                code = slot.process.exitcode
                delay = slot.restart_delay
                if time.monotonic() - slot.started > RESTART_MAX_S:
                    delay = RESTART_MIN_S  # it had been running fine: restart at once
                log.error(
                    "worker-%d exited with %s; restarting in %.0f s", slot.spec.index, code, delay
                )
                if self._stop.wait(delay):
                    break
                fresh = self._start(slot.spec)
                fresh.restart_delay = min(delay * 2, RESTART_MAX_S)
                self._slots[i] = fresh
        return self._stop_all()

    def _start(self, spec: WorkerSpec) -> _Slot:
        process = self._ctx.Process(
            target=_worker_main, args=(spec,), name=f"cityops-ingest-{spec.index}"
        )
        process.start()
        log.info(
            "worker-%d started (pid %s, client id %s)",
            spec.index,
            process.pid,
            spec.settings.mqtt.client_id,
        )
        return _Slot(spec=spec, process=process, started=time.monotonic())

    def _stop_all(self) -> int:
        for slot in self._slots:
            if slot.process.is_alive():
                slot.process.terminate()  # SIGTERM: the ingestor finishes its batch in flight
        deadline = time.monotonic() + STOP_WAIT_S
        code = 0
        for slot in self._slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.error(
                    "worker-%d did not stop in %.0f s; killing it", slot.spec.index, STOP_WAIT_S
                )
                slot.process.kill()
                slot.process.join(5)
                code = 1
            elif slot.process.exitcode not in (0, None):
                code = 1
        return code
