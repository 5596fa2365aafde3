"""A real agent process killed with SIGKILL mid-burst and restarted: nothing is lost."""

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cityops.paths import REPO_ROOT
from edge.uplink.outbox import read_stats
from shared.codec import decode
from shared.telemetry import DeviceState, DeviceStatus
from shared.topics import Channel, subscription, topic
from tests.conftest import Broker
from tests.edge.uplink.helpers import id_counts, recorder, uplink_settings

pytestmark = pytest.mark.services

BURST = 3000


def start_agent(settings: Path, ledger: Path, device: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.edge.uplink.burst_agent",
            str(settings),
            str(ledger),
            device,
            str(count),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def ledger_ids(ledger: Path) -> list[str]:
    if not ledger.exists():
        return []
    return [line for line in ledger.read_text().splitlines() if len(line) == 36]


def test_sigkill_mid_burst_then_restart_loses_nothing(mosquitto: Broker, tmp_path: Path) -> None:
    device = "up-crash"
    mosquitto.add_user(device, "up-crash-pw")
    settings = uplink_settings(mosquitto, device, tmp_path / "outbox.db", flush_timeout_s=5.0)
    settings_file = tmp_path / "uplink.json"
    settings_file.write_text(
        json.dumps({**settings.model_dump(mode="json"), "password": "up-crash-pw"})
    )
    ledger = tmp_path / "ledger.txt"
    outbox = tmp_path / "outbox.db"
    event_topic = topic(device, Channel.EVENT)
    filters = [subscription(Channel.EVENT, device), subscription(Channel.STATUS, device)]
    with recorder(mosquitto, filters, "rec-crash") as rec:
        first = start_agent(settings_file, ledger, device, BURST)
        try:
            # Kill once the burst is well under way, events are flowing to the broker, and
            # some are on disk without their PUBACK yet.
            rec.wait_for(lambda: len(rec.payloads(event_topic)) >= 300, 30, "burst under way")
            rec.wait_for(lambda: read_stats(outbox).depth >= 5, 30, "a backlog")
        finally:
            first.kill()
            first.wait(5)
        emitted = ledger_ids(ledger)
        assert 300 <= len(emitted) < BURST, "the kill did not land mid-burst"
        pending = read_stats(outbox).depth
        assert pending > 0, "nothing was left to recover"
        # The broker saw the link die and published the Last Will.
        rec.wait_for(
            lambda: (
                decode(DeviceStatus, rec.payloads(topic(device, Channel.STATUS))[-1]).state
                is DeviceState.OFFLINE
            ),
            10,
            "Last Will offline",
        )

        second = start_agent(settings_file, ledger, device, 0)
        try:
            rec.wait_for(
                lambda: set(emitted) <= set(id_counts(rec.payloads(event_topic))),
                30,
                "every emitted event after restart",
            )
            # Some may have arrived before the kill without their PUBACK being recorded: the
            # restarted agent re-sends them, and its outbox must end empty.
            rec.wait_for(lambda: read_stats(outbox).depth == 0, 30, "the outbox drained")
            time.sleep(0.3)
        finally:
            second.terminate()
            _, err = second.communicate(timeout=15)
        assert second.returncode == 0, err.decode()[-2000:]

    counts: Counter[str] = id_counts(rec.payloads(event_topic))
    assert set(emitted) <= set(counts), "events lost"
    # At most the one event being written when the process died is unknown to the ledger.
    assert len(set(counts) - set(emitted)) <= 1
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= 100, "only in-flight events (window 50) may come twice"
    last = decode(DeviceStatus, rec.payloads(topic(device, Channel.STATUS))[-1])
    assert last.state is DeviceState.OFFLINE  # clean stop after the restart
