"""One ``/metrics`` for all ``cloud serve --workers N`` processes (prometheus_client multiprocess).

uvicorn's workers share a port, so a scrape reaches one of them. With ``PROMETHEUS_MULTIPROC_DIR``
set before a worker imports prometheus_client, each Counter, Histogram and Gauge it creates keeps
its values in ``<type>[_<mode>]_<pid>.db`` files there, and ``MultiProcessCollector`` adds up every
worker's files whichever worker answers (https://prometheus.github.io/client_python/multiprocess/).
What is read at scrape time (the SQL state, build info) is not in those files; ``ApiMetrics``
renders it once, from the answering worker.
"""

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """A private, empty directory for the workers' metric files, removed on exit.

    It is put in this process's environment, which the workers uvicorn spawns inherit (they
    start a fresh interpreter, so prometheus_client is imported after it is set).
    """
    previous = os.environ.get(MULTIPROC_ENV)
    with tempfile.TemporaryDirectory(prefix="cityops-metrics-") as path:
        os.environ[MULTIPROC_ENV] = path
        try:
            yield Path(path)
        finally:
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous


def files_dir() -> Path | None:
    """Where this process's metric values are kept, or None when they are in memory (one process).

    prometheus_client chose at import time; a variable set after that changes nothing.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path or values.ValueClass is values.MutexValue:
        return None
    return Path(path)


def all_workers(path: Path) -> CollectorRegistry:
    """Every worker's counters, histograms and gauges, added up (gauges by their own mode)."""
    forget_dead_workers(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(path))  # type: ignore[no-untyped-call]
    return registry


def forget_dead_workers(path: Path) -> None:
    """Drop the ``live*`` gauges of workers that are gone; their counters stay (totals never fall).

    uvicorn has no hook when it replaces a worker that died or was recycled (SIGHUP, SIGTTOU),
    so the worker answering a scrape looks for files of processes that no longer exist.
    """
    pids = {
        int(found[1])
        for file in path.glob("gauge_live*.db")
        if (found := _LIVE_GAUGE_FILE.fullmatch(file.name))
    }
    for pid in pids:
        if not _alive(pid):
            mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took the number: not our worker
        return False
    return True
