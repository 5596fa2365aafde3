"""The balena update lock follows the outbox, and the container health check."""

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.uplink.outbox import MessageKind, Outbox, OutboxMessage
from edge.uplink.settings import OutboxSettings
from firmware import healthcheck
from firmware.update_lock import (
    Backlog,
    DrainWatcher,
    LockPolicy,
    UpdateLock,
    outbox_backlog,
    watch,
)


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_watcher(tmp_path: Path, **policy: float) -> tuple[DrainWatcher, ManualClock]:
    clock = ManualClock()
    lock = UpdateLock(tmp_path / "balena" / "updates.lock")
    return DrainWatcher(lock, LockPolicy(**policy), clock), clock


def test_lock_file_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "balena" / "updates.lock"
    ours = UpdateLock(path)
    assert ours.acquire()
    assert path.read_text().strip() == f"cityops-update-lock pid={os.getpid()}"
    assert not UpdateLock(path).acquire()  # someone else (the Supervisor) cannot take it
    ours.release()
    assert not path.exists()
    path.write_text("supervisor")  # the Supervisor holds it: we must not
    assert not ours.acquire()
    assert path.read_text() == "supervisor"
    ours.release()
    assert path.exists()  # never remove a lock we do not own


def test_a_stale_lock_of_ours_is_cleared_but_not_the_supervisors(tmp_path: Path) -> None:
    path = tmp_path / "balena" / "updates.lock"
    path.parent.mkdir()
    path.write_text("cityops-update-lock pid=17\n")  # we were killed while holding it
    assert UpdateLock(path).clear_stale()
    assert not path.exists()
    path.write_text("")  # the Supervisor's lock
    assert not UpdateLock(path).clear_stale()
    assert path.exists()
    assert not UpdateLock(tmp_path / "none.lock").clear_stale()


def test_lock_held_while_draining_and_released_when_empty(tmp_path: Path) -> None:
    watcher, clock = make_watcher(tmp_path)
    assert not watcher.observe(Backlog(0, None))
    for depth in (40, 30, 10, 1):
        assert watcher.observe(Backlog(depth, 50.0))
        clock.t += 2
    assert not watcher.observe(Backlog(0, None))
    assert not watcher.lock.path.exists()


def test_lock_released_when_the_backlog_stalls(tmp_path: Path) -> None:
    watcher, clock = make_watcher(tmp_path, stall_s=10.0)
    assert watcher.observe(Backlog(5, 1.0))
    clock.t += 6
    assert watcher.observe(Backlog(5, 7.0))  # no progress yet, within the grace
    clock.t += 6
    assert not watcher.observe(Backlog(6, 13.0))  # offline: let an update through
    clock.t += 2
    assert watcher.observe(Backlog(2, 4.0))  # draining again


def test_same_depth_with_a_newer_oldest_counts_as_progress(tmp_path: Path) -> None:
    watcher, clock = make_watcher(tmp_path, stall_s=5.0)
    age = 30.0
    for _ in range(10):  # one sent, one queued per poll: depth stays, oldest gets younger
        assert watcher.observe(Backlog(3, age))
        clock.t += 3
        age -= 1


def test_lock_is_not_held_forever(tmp_path: Path) -> None:
    watcher, clock = make_watcher(tmp_path, max_hold_s=60.0, stall_s=1000.0)
    depth = 10_000
    held = []
    for _ in range(100):
        held.append(watcher.observe(Backlog(depth, 5.0)))
        clock.t += 5
        depth -= 1
    assert held[0]
    assert not all(held)
    first_release = held.index(False)
    assert first_release * 5 >= 60
    assert any(held[first_release + 12 + 1 :])  # taken again after the cooldown


def test_watch_follows_a_real_outbox(tmp_path: Path) -> None:
    outbox = Outbox(OutboxSettings(path=tmp_path / "outbox.sqlite3"))
    lock_path = tmp_path / "balena" / "updates.lock"
    watcher = DrainWatcher(UpdateLock(lock_path), LockPolicy(), time.monotonic)
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(lambda: outbox_backlog(outbox.path), watcher, stop, 0.02),
        daemon=True,
    )
    try:
        assert outbox_backlog(tmp_path / "absent.sqlite3") == Backlog(0, None)
        thread.start()
        time.sleep(0.1)
        assert not lock_path.exists()
        outbox.put_many(
            [OutboxMessage(MessageKind.TELEMETRY, "cityops/v1/cam-1/telemetry", b"{}")] * 5
        )
        wait_until(lock_path.exists, "lock taken while the outbox holds messages")
        seqs = [row.seq for row in outbox.peek()]
        outbox.ack(seqs[:3])
        time.sleep(0.1)
        assert lock_path.exists()
        outbox.ack(seqs[3:])
        wait_until(lambda: not lock_path.exists(), "lock released once drained")
    finally:
        stop.set()
        thread.join(5)
        outbox.close()
    assert not lock_path.exists()


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- health


@pytest.fixture
def pidfile(tmp_path: Path) -> Path:
    path = tmp_path / "agent.pid"
    path.write_text(f"{os.getpid()}\n")
    return path


def test_health_ok_when_the_outbox_is_fresh(tmp_path: Path, pidfile: Path) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    outbox.write_bytes(b"x")
    now = time.time()
    os.utime(outbox, (now - 500, now - 500))
    (tmp_path / "outbox.sqlite3-wal").write_bytes(b"w")  # the WAL is what changes first
    assert healthcheck.check(outbox, pidfile, 120, now) is None
    argv = ["--outbox", str(outbox), "--pidfile", str(pidfile), "--max-idle", "120"]
    assert healthcheck.main(argv) == 0


@pytest.mark.parametrize("case", ["stale", "no-outbox", "dead-pid", "no-pidfile"])
def test_health_fails_with_a_reason(tmp_path: Path, pidfile: Path, case: str) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    now = time.time()
    if case != "no-outbox":
        outbox.write_bytes(b"x")
        age = 500 if case == "stale" else 1
        os.utime(outbox, (now - age, now - age))
    if case == "dead-pid":
        pidfile.write_text("999999999\n")
    if case == "no-pidfile":
        pidfile.unlink()
    problem = healthcheck.check(outbox, pidfile, 120, now)
    assert problem is not None
    expected = {
        "stale": "untouched for 500 s",
        "no-outbox": "no outbox",
        "dead-pid": "not running",
        "no-pidfile": "not running",
    }[case]
    assert expected in problem
