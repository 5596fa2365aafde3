"""`cityops --help` and every subcommand's help work and teach with an example."""

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from cityops.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["edge"], ["cloud"], ["provision"], ["schema"], ["demo"]])
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize("group", ["edge", "cloud", "provision", "schema"])
def test_group_help_has_an_example(group: str) -> None:
    result = runner.invoke(app, [group, "--help"])
    assert "Example" in result.output or "example" in result.output


def test_schema_export_writes_valid_json_schemas(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.schema.json"))
    assert {f.name for f in files} >= {
        "event.schema.json",
        "telemetry.schema.json",
        "device-config.schema.json",
    }
    for path in files:
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
    event_schema = json.loads((tmp_path / "event.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(event_schema)
    assert not validator.is_valid({"id": "x"})


def test_cli_starts_without_cloud_or_vision_libraries() -> None:
    """An edge-only install (a camera unit) must be able to run `cityops edge ...`."""
    import subprocess
    import sys

    code = (
        "import sys, cityops.cli\n"
        "heavy = ['sqlalchemy', 'fastapi', 'uvicorn', 'cv2', 'numpy', 'balena', 'aiomqtt']\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
