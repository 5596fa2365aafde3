"""The real Prometheus scrapes a running CityOps stack and fires the device-offline alert.

Prometheus runs on the shipped ``prometheus.yml`` and rule files, with loopback targets, 1 s
intervals and every ``for:``/range window shortened (``cloud.services.prometheus``): the
expressions under test are the shipped ones.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloud.services.prometheus import Prometheus
from tests.deploy.conftest import FOR_S, Stack

pytestmark = pytest.mark.services


def _eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


def _sensor_node(stack: Stack, device: str, workdir: Path) -> subprocess.Popen[bytes]:
    """The real sensor-node agent (firmware/sensor_node) on the host: LWT ``offline``, retained."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware.sensor_node.host",
            "--device-id",
            device,
            "--host",
            stack.broker.host,
            "--port",
            str(stack.broker.port),
            "--interval",
            "1",
            "--outbox",
            str(workdir / f"{device}-outbox.bin"),
        ],
        stdout=(workdir / f"{device}.log").open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "CITYOPS_NODE_PASSWORD": stack.broker.users[device]},
    )


def _alerts(prom: Prometheus, name: str, device: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prom.api("alerts")["alerts"]
        if a["labels"]["alertname"] == name and a["labels"].get("device") == device
    ]


def _value(prom: Prometheus, expr: str) -> float | None:
    result = prom.api("query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None


def test_device_offline_alert_fires_after_the_agent_is_killed(
    stack: Stack, prometheus: Prometheus, tmp_path: Path
) -> None:
    node = _sensor_node(stack, "dev-a", tmp_path)
    try:
        # Both targets scraped, and the node's presence reached Prometheus through ingest + API.
        def targets_up() -> bool:
            active = prometheus.api("targets")["activeTargets"]
            return {t["labels"]["job"] for t in active if t["health"] == "up"} == {
                "cityops-api",
                "cityops-ingest",
            }

        _eventually(targets_up, 30, "both targets up")
        online = 'cityops_device_online{device="dev-a",site="rossio",job="cityops-api"}'
        _eventually(lambda: _value(prometheus, online) == 1, 30, "dev-a online in Prometheus")
        _eventually(
            lambda: (
                _value(prometheus, 'cityops_device_outbox_messages{device="dev-a"}') is not None
            ),
            30,
            "dev-a's outbox depth (from its telemetry)",
        )
        received = "sum(cityops_ingest_received_total{job='cityops-ingest',channel='telemetry'})"
        assert (_value(prometheus, received) or 0) > 0
        time.sleep(FOR_S + 1)  # long enough to fire if it were wrongly offline
        assert _alerts(prometheus, "CityOpsDeviceOffline", "dev-a") == []
    finally:
        node.send_signal(signal.SIGKILL)  # power cut: no goodbye, the broker sends the Last Will
        node.wait(10)
    killed = time.monotonic()
    states: list[str] = []

    def firing() -> bool:
        alerts = _alerts(prometheus, "CityOpsDeviceOffline", "dev-a")
        states.extend(a["state"] for a in alerts)
        return any(a["state"] == "firing" for a in alerts)

    _eventually(firing, 30, "CityOpsDeviceOffline firing for dev-a")
    took = time.monotonic() - killed
    print(f"CityOpsDeviceOffline firing {took:.1f} s after SIGKILL (for: {FOR_S:g}s)")
    assert "pending" in states  # the `for:` window was honoured before it fired
    (alert,) = _alerts(prometheus, "CityOpsDeviceOffline", "dev-a")
    assert alert["labels"]["site"] == "rossio"
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"].startswith("Device dev-a at rossio has been offline")
    assert alert["annotations"]["runbook_url"] == "docs/observability.md#cityopsdeviceoffline"
    # Offline is not reported twice: the blind-spot alert is for units that are connected.
    assert _value(prometheus, 'cityops_device_blind_spot{device="dev-a"}') == 1
    assert _alerts(prometheus, "CityOpsCameraBlindSpot", "dev-a") == []
    # The device that never connected is not "offline" (it has no presence yet).
    assert _alerts(prometheus, "CityOpsDeviceOffline", "dev-b") == []
