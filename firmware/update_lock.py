"""Hold the balena update lock while the agent's outbox is draining.

The Supervisor does not kill a service for an update (or reboot for a config change) while
``/tmp/balena/updates.lock`` exists; the file must be created exclusively (``O_EXCL``), because
the Supervisor takes the same file before it kills us. An exclusive ``flock`` on it also defers
host OS update reboots. The outbox survives updates on its named volume, so the lock is only
worth holding while the backlog is actually shrinking: when it stops moving for ``stall_s`` (the
broker is unreachable) or has been held for ``max_hold_s``, the lock is let go so that an update,
perhaps the fix, can still land.

Run next to the agent: ``python -m firmware.update_lock --outbox /data/outbox.sqlite3``.
"""

import argparse
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger("cityops.firmware.update_lock")

LOCK_PATH = Path("/tmp/balena/updates.lock")  # noqa: S108 - the path the balena Supervisor uses
MARKER = "cityops-update-lock"


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the lock decision needs from the outbox."""

    depth: int
    oldest_age_s: float | None


class UpdateLock:
    def __init__(self, path: Path = LOCK_PATH) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Create the lock file exclusively; False when it exists (the Supervisor is updating)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.warning(
                "update lock %s: created but flock failed; OS updates not deferred", self.path
            )
        os.write(fd, f"{MARKER} pid={os.getpid()}\n".encode())
        self._fd = fd
        return True

    def clear_stale(self) -> bool:
        """Remove a lock a previous run of ours left behind (killed while holding it).

        Only one keeper runs per container and it starts with the container, so a file with our
        marker at start-up is stale; a file without it belongs to the Supervisor and stays.
        """
        try:
            content = self.path.read_text(errors="replace")
        except OSError:
            return False
        if self._fd is None and content.startswith(MARKER):
            self.path.unlink(missing_ok=True)
            log.warning("removed a stale update lock left by a previous run: %s", self.path)
            return True
        return False

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(fd)


@dataclass
class LockPolicy:
    stall_s: float = 120.0
    """Let go when the backlog has not shrunk for this long (broker unreachable)."""
    max_hold_s: float = 900.0
    """Never hold longer than this in one go."""


class DrainWatcher:
    """Decides, poll by poll, whether the lock should be held."""

    def __init__(self, lock: UpdateLock, policy: LockPolicy, clock: Callable[[], float]) -> None:
        self.lock = lock
        self.policy = policy
        self.clock = clock
        self._last: Backlog | None = None
        self._progress_at = 0.0
        self._held_since = 0.0
        self._cooldown_until = 0.0

    def _progressed(self, now: Backlog) -> bool:
        last = self._last
        if last is None or last.depth == 0:
            return True  # a fresh backlog gets the benefit of the doubt
        if now.depth < last.depth:
            return True
        # Same depth, but the oldest message changed: one left and another came in.
        return (
            now.oldest_age_s is not None
            and last.oldest_age_s is not None
            and now.oldest_age_s < last.oldest_age_s
        )

    def observe(self, backlog: Backlog) -> bool:
        """Take or drop the lock for *backlog*; returns whether it is held afterwards."""
        now = self.clock()
        if backlog.depth > 0 and self._progressed(backlog):
            self._progress_at = now
        self._last = backlog
        stalled = now - self._progress_at >= self.policy.stall_s
        want = backlog.depth > 0 and not stalled and now >= self._cooldown_until
        if want and self.lock.held and now - self._held_since >= self.policy.max_hold_s:
            log.warning(
                "update lock held for %.0f s: releasing for a while", now - self._held_since
            )
            self._cooldown_until = now + self.policy.max_hold_s
            want = False
        if want and not self.lock.held:
            if self.lock.acquire():
                self._held_since = now
                log.info("outbox draining (%d messages): update lock taken", backlog.depth)
            else:
                log.info("update lock busy: the Supervisor is applying an update")
        elif not want and self.lock.held:
            self.lock.release()
            log.info("update lock released (outbox depth %d)", backlog.depth)
        return self.lock.held


def outbox_backlog(path: Path) -> Backlog:
    """Read the agent's outbox (another process writes it); empty if it does not exist yet."""
    from edge.uplink.outbox import read_stats

    try:
        stats = read_stats(path)
    except FileNotFoundError:
        return Backlog(depth=0, oldest_age_s=None)
    return Backlog(depth=stats.depth, oldest_age_s=stats.oldest_age_s)


def watch(
    probe: Callable[[], Backlog],
    watcher: DrainWatcher,
    stop: threading.Event,
    interval_s: float = 2.0,
) -> None:
    try:
        while not stop.is_set():
            try:
                watcher.observe(probe())
            except Exception:  # a locked or half-written outbox must not end the watcher
                log.exception("cannot read the outbox; releasing the update lock")
                watcher.lock.release()
            stop.wait(interval_s)
    finally:
        watcher.lock.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--outbox", type=Path, default=Path("/data/outbox.sqlite3"))
    parser.add_argument("--lock", type=Path, default=LOCK_PATH)
    parser.add_argument("--interval", type=float, default=2.0, help="Seconds between polls.")
    parser.add_argument("--stall", type=float, default=LockPolicy.stall_s)
    parser.add_argument("--max-hold", type=float, default=LockPolicy.max_hold_s)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    lock = UpdateLock(args.lock)
    lock.clear_stale()
    watcher = DrainWatcher(lock, LockPolicy(args.stall, args.max_hold), time.monotonic)
    outbox: Path = args.outbox
    watch(lambda: outbox_backlog(outbox), watcher, stop, args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
