"""`cityops demo --short` end to end: the incidents that must appear, and no process left behind."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cityops.demo.supervisor import leftover_pids
from cityops.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def test_short_demo_opens_one_parking_and_one_abandoned_incident(
    tmp_path: Path, material: Path
) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cityops",
            "demo",
            "--short",
            "--no-live",
            "--workdir",
            str(workdir),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        env={**os.environ, "CITYOPS_SHARED_DIR": str(material)},
        check=False,
    )
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted((workdir / "logs").glob("*.log"))
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:] + logs
    summary = json.loads((workdir / "summary.json").read_text())
    kinds = summary["incidents_by_kind"]
    assert kinds.get("illegal_parking") == 1, (summary, logs)
    assert kinds.get("abandoned_object") == 1, (summary, logs)
    assert set(kinds) <= {"illegal_parking", "abandoned_object"}, summary
    departments = {i["kind"]: i["department"] for i in summary["incidents"]}
    assert departments["illegal_parking"] != departments["abandoned_object"]
    assert summary["bytes_sent"] > 0
    assert summary["bytes_sent"] < summary["video_bytes"] / 10  # events, never video
    assert all(code == 0 for code in summary["agent_exit_codes"].values()), summary
    assert summary["leftover_pids"] == []
    assert leftover_pids(workdir / "pids.json") == []
    assert "Demo summary" in result.stdout
    # Privacy audit: an independent face model over every snapshot that left the devices.
    audit = summary["privacy_audit"]
    assert audit["snapshots_left_devices"] >= 2, audit  # the parking and the bag start events
    assert audit["device_audit_records"] >= audit["snapshots_left_devices"], audit
    assert audit["readable_faces_after"] == 0, audit
    assert "privacy audit" in result.stdout
    # The operator console's address and a demo login (docs/console.md).
    console = (
        r"operator\s+console\s+at\s+http://127\.0\.0\.1:\d+/\s+—\s+sign\s+in\s+as\s+demo\s+/\s+\S"
    )
    assert re.search(console, result.stdout), result.stdout[:2000]


def test_demo_without_material_says_where_to_put_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cityops",
            "demo",
            "--short",
            "--no-live",
            "--workdir",
            str(tmp_path / "d"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CITYOPS_SHARED_DIR": str(tmp_path / "nothing")},
        check=False,
    )
    assert result.returncode == 2
    assert "models fetch" in result.stdout
