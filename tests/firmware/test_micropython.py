"""The sensor node's pure modules under a real MicroPython (the WebAssembly port, run by node).

``firmware/scripts/install-micropython.sh`` installs the npm package into ``.cache/micropython``.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUNNER = REPO / "firmware/scripts/run-micropython.mjs"
MPY_PACKAGE = "node_modules/@micropython/micropython-webassembly-pyscript"
MPY_MJS = REPO / ".cache/micropython" / MPY_PACKAGE / "micropython.mjs"


@pytest.fixture(scope="module")
def micropython() -> Path:
    need(shutil.which("node") is not None and shutil.which("npm") is not None, "node and npm")
    subprocess.run(
        ["bash", str(REPO / "firmware/scripts/install-micropython.sh")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert MPY_MJS.exists()
    return MPY_MJS


def run_micropython(mjs: Path, script: Path) -> str:
    proc = subprocess.run(
        ["node", str(RUNNER), str(mjs), str(REPO), str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def run_cpython(script: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_runner_is_micropython(micropython: Path, tmp_path: Path) -> None:
    script = tmp_path / "which.py"
    script.write_text(
        "import sys\nprint(sys.implementation.name)\n"
        "from firmware.sensor_node import node\nprint(node.__name__)\n"
        "try:\n    import typing\nexcept ImportError:\n    print('no typing')\n"
    )
    assert run_micropython(micropython, script).splitlines() == [
        "micropython",
        "firmware.sensor_node.node",
        "no typing",
    ]


def test_runner_reports_python_errors(micropython: Path, tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("from dataclasses import dataclass\n")
    proc = subprocess.run(
        ["node", str(RUNNER), str(micropython), str(REPO), str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "ImportError" in proc.stderr


def test_pure_modules_same_output_on_micropython_and_cpython(micropython: Path) -> None:
    script = HERE / "mpy_scenario.py"
    on_mpy = run_micropython(micropython, script)
    on_cpy = run_cpython(script)
    for section in ("iso", "uuid7", "json", "crc", "drivers", "ringbuf", "thresholds", "config"):
        assert f"== {section}\n" in on_mpy
    assert "== node\n" in on_mpy
    # Known answers: CRC check values from the Sensirion datasheet and for CRC-32 "123456789".
    assert "146 3421780262 0\n" in on_mpy
    assert "2000-02-29T00:00:00.000Z\n" in on_mpy
    assert on_mpy.splitlines() == on_cpy.splitlines()


def test_device_layer_compiles_under_micropython(micropython: Path, tmp_path: Path) -> None:
    """``device/`` needs ESP32 modules to run, but its syntax must be MicroPython's."""
    sources = sorted((REPO / "firmware/sensor_node/device").glob("*.py"))
    assert {p.name for p in sources} >= {"main.py", "board.py"}
    lines = []
    for path in sources:
        lines.append(f"compile({path.read_text()!r}, {path.name!r}, 'exec')")
        lines.append(f"print({path.name!r}, 'ok')")
    lines.append("try:\n    compile('def f(a, /):\\n    pass\\n', 'probe', 'exec')")
    lines.append("except SyntaxError:\n    print('probe rejected')")
    script = tmp_path / "compile_device.py"
    script.write_text("\n".join(lines) + "\n")
    out = run_micropython(micropython, script).split("\n")
    assert [line for line in out if line] == [
        *(f"{p.name} ok" for p in sources),
        "probe rejected",  # proof that compile() checks MicroPython's grammar, not CPython's
    ]


def test_benchmark_prints_json_with_a_cpython_baseline(micropython: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.sensor_node.host.bench"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    results = report["results"]
    assert set(results) == {
        "dba_100ms_16khz",
        "telemetry_encode",
        "ring_push_pop_300b",
        "threshold_event",
        "uuid7",
        "crc32_300b",
    }
    for row in results.values():
        assert row["cpython_us"] > 0
        assert row["micropython_wasm_us"] > 0
        assert row["ratio_vs_cpython"] == pytest.approx(
            row["micropython_wasm_us"] / row["cpython_us"], rel=0.05, abs=0.1
        )
