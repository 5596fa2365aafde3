"""Container health check of the edge agent (``HEALTHCHECK`` / compose ``healthcheck``).

Healthy when the agent process is alive and its outbox was written recently: the uplink puts a
telemetry message into the outbox every ``telemetry_interval_s`` (online or not), so a file
untouched for ``--max-idle`` seconds means the agent loop is stuck. Exit 0 healthy, 1 unhealthy.
"""

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_OUTBOX = Path("/data/outbox.sqlite3")
DEFAULT_PIDFILE = Path(os.environ.get("CITYOPS_RUN_DIR", "/run")) / "cityops-agent.pid"


def last_write(outbox: Path) -> float | None:
    """Newest modification time of the SQLite outbox and its WAL, or None if neither exists."""
    times = [
        p.stat().st_mtime for p in (outbox, outbox.with_name(outbox.name + "-wal")) if p.exists()
    ]
    return max(times) if times else None


def pid_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check(outbox: Path, pidfile: Path, max_idle_s: float, now: float) -> str | None:
    """None when healthy, else why not."""
    if not pid_alive(pidfile):
        return f"agent process not running (pid file {pidfile})"
    written = last_write(outbox)
    if written is None:
        return f"no outbox at {outbox} yet"
    idle = now - written
    if idle > max_idle_s:
        return f"outbox {outbox} untouched for {idle:.0f} s (limit {max_idle_s:.0f} s)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Health check of the CityOps edge agent.")
    parser.add_argument(
        "--outbox",
        type=Path,
        default=Path(os.environ.get("CITYOPS_EDGE_UPLINK__OUTBOX__PATH", str(DEFAULT_OUTBOX))),
    )
    parser.add_argument("--pidfile", type=Path, default=DEFAULT_PIDFILE)
    parser.add_argument(
        "--max-idle",
        type=float,
        default=float(os.environ.get("CITYOPS_HEALTH_MAX_IDLE_S", "180")),
        help="Seconds without an outbox write before the agent counts as stuck.",
    )
    args = parser.parse_args(argv)
    problem = check(args.outbox, args.pidfile, args.max_idle, time.time())
    if problem is not None:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    sys.stdout.write("healthy\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
